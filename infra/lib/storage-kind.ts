/**
 * Which file system the functions share (context `storage`): Amazon EFS, or Amazon S3 Files (an
 * NFS file system built on EFS that keeps a versioned S3 bucket in sync). The functions' code is
 * the same for both: they talk POSIX to MESSAGES_DIR. See README, "EFS or S3 Files?", and
 * docs/s3-files.md.
 */
export const STORAGE_KINDS = ['efs', 's3files'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** The default: EFS, as before S3 Files existed. */
export const DEFAULT_STORAGE: StorageKind = 'efs';

/** Validates context `storage` (case-insensitive; unset means DEFAULT_STORAGE). */
export function parseStorage(raw: string | undefined): StorageKind {
  const value = (raw ?? DEFAULT_STORAGE).trim().toLowerCase();
  if (!(STORAGE_KINDS as readonly string[]).includes(value)) {
    throw new Error(`context 'storage' must be one of ${STORAGE_KINDS.join(', ')}, got '${raw}'`);
  }
  return value as StorageKind;
}

/**
 * The NFS client actions a function's role is granted (spelled out: no wildcard actions), and the
 * condition key the service sets to the ARN of the access point a client mounts through. Both
 * services authorise them on the `file-system` resource only (Service Authorization Reference:
 * "Actions, resources, and condition keys for Amazon EFS" and "... for Amazon S3 Files").
 */
export interface ClientActions {
  readonly mount: string;
  readonly write: string;
  readonly rootAccess: string;
  readonly accessPointArnKey: string;
}

export const CLIENT_ACTIONS: Readonly<Record<StorageKind, ClientActions>> = {
  efs: {
    mount: 'elasticfilesystem:ClientMount',
    write: 'elasticfilesystem:ClientWrite',
    rootAccess: 'elasticfilesystem:ClientRootAccess',
    accessPointArnKey: 'elasticfilesystem:AccessPointArn',
  },
  s3files: {
    mount: 's3files:ClientMount',
    write: 's3files:ClientWrite',
    rootAccess: 's3files:ClientRootAccess',
    accessPointArnKey: 's3files:AccessPointArn',
  },
};

/**
 * Least privilege: a function whose routes only read (GET) may mount, never write; the file
 * system then refuses every write from it, whatever its code does.
 */
export function clientActionsFor(kind: StorageKind, readOnly: boolean): string[] {
  const actions = CLIENT_ACTIONS[kind];
  return readOnly ? [actions.mount] : [actions.mount, actions.write];
}

/**
 * The file system the operations side (alarms, dashboard) watches: its kind and what its metrics
 * are keyed by. EFS: `AWS/EFS` by `FileSystemId`; S3 Files: `AWS/S3/Files` by `FileSystemId`, and
 * the bucket's `AWS/S3` storage metrics by `BucketName`.
 */
export type MonitoredStorage =
  | { readonly kind: 'efs'; readonly fileSystemId: string }
  | { readonly kind: 's3files'; readonly fileSystemId: string; readonly bucketName: string };
