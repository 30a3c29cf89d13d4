//! The client's caches, following the Linux NFS client's rules (nfs(5), `fs/nfs/dir.c`,
//! `fs/nfs/inode.c`), so that several mounts of one backing directory behave like several NFS
//! clients of one server:
//!
//! * **Attributes** are cached per object for a timeout that starts at `acregmin` (files) or
//!   `acdirmin` (directories), doubles each time a revalidation finds the object unchanged, up
//!   to `acregmax`/`acdirmax`, and falls back to the minimum when it changed.
//! * **Names** (dentries) are cached, found and not found, each stamped with its directory's
//!   *verifier*. A name is trusted while its stamp equals the directory's verifier; using it first
//!   revalidates the directory's attributes if they expired, and a revalidation that shows a
//!   change made by anyone else bumps the verifier, so every name cached under it, positive or
//!   negative, is looked up again. So a "no such name" is believed until the directory's
//!   attributes are revalidated and show a change: up to `acdirmax` for a directory nobody opens.
//! * **Listings** are cached per directory and used while the directory is unchanged.
//! * **Data** is cached per file and used while the file is unchanged.
//! * **Close-to-open**: opening a file or a directory revalidates its attributes (a round trip),
//!   which drops its data or listing and bumps its verifier if it changed. Opening with `O_PATH`
//!   does not (no open intent reaches the file system, as on NFS).
//! * **The client's own changes** (create, remove, rename, ...) update the directory's cached
//!   attributes; if the attributes before the change (NFSv4's `change_info4`) match the cached
//!   ones nobody else changed it and the names cached under it stay valid, else they are dropped.
//! * A lock revalidates the file's data.
//!
//! These are the rules; the round trips they cost are counted by the caller (fs.rs).

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::server::{Attr, Change, Changed, Entry, Handle};

/// The attribute cache timeouts (nfs(5)'s `acregmin`, `acregmax`, `acdirmin`, `acdirmax`).
#[derive(Clone, Copy, Debug)]
pub struct CacheTimes {
    pub acregmin: Duration,
    pub acregmax: Duration,
    pub acdirmin: Duration,
    pub acdirmax: Duration,
}

impl Default for CacheTimes {
    /// nfs(5)'s defaults: 3, 60, 30 and 60 seconds.
    fn default() -> Self {
        Self {
            acregmin: Duration::from_secs(3),
            acregmax: Duration::from_secs(60),
            acdirmin: Duration::from_secs(30),
            acdirmax: Duration::from_secs(60),
        }
    }
}

/// A cached name in a directory.
#[derive(Clone, Debug)]
pub enum Name {
    /// The name is this object.
    Is(Handle),
    /// There is no such name.
    Absent,
}

#[derive(Clone, Debug)]
struct Dentry {
    name: Name,
    verifier: u64,
}

#[derive(Clone, Debug)]
struct CachedAttr {
    attr: Attr,
    fetched: Instant,
    timeout: Duration,
}

/// What the client knows about one object of the server.
#[derive(Default, Debug)]
struct Object {
    attr: Option<CachedAttr>,
    /// Directories: bumped when a revalidation shows someone else changed the directory.
    verifier: u64,
    names: HashMap<OsString, Dentry>,
    listing: Option<(Change, Arc<Vec<Entry>>)>,
    data: Option<(Change, Arc<Vec<u8>>)>,
    /// The directory and name this object was last found under, to forget it there when the
    /// server says it is gone.
    found_as: Option<(Handle, OsString)>,
}

/// Above this many objects known, the client forgets everything it cached (a client may drop
/// any cache entry at any time; this bounds the model's memory on huge stores).
const MAX_OBJECTS: usize = 2_000_000;

/// One client's caches.
pub struct Client {
    times: CacheTimes,
    objects: HashMap<Handle, Object>,
}

impl Client {
    pub fn new(times: CacheTimes) -> Self {
        Self {
            times,
            objects: HashMap::new(),
        }
    }

    fn object(&mut self, handle: &Handle) -> &mut Object {
        if self.objects.len() >= MAX_OBJECTS && !self.objects.contains_key(handle) {
            self.objects.clear();
        }
        self.objects.entry(handle.clone()).or_default()
    }

    /// The cached attributes of `handle` if they have not expired.
    pub fn fresh_attr(&self, handle: &Handle) -> Option<Attr> {
        let cached = self.objects.get(handle)?.attr.as_ref()?;
        (cached.fetched.elapsed() < cached.timeout).then_some(cached.attr)
    }

    /// The cached attributes of `handle`, expired or not.
    pub fn any_attr(&self, handle: &Handle) -> Option<Attr> {
        Some(self.objects.get(handle)?.attr.as_ref()?.attr)
    }

    /// Takes attributes the server just returned (GETATTR, LOOKUP, READDIRPLUS, OPEN): if they
    /// show a change the client did not make, its data, listing and names are no longer trusted.
    pub fn revalidated(&mut self, handle: &Handle, attr: Attr) {
        let times = self.times;
        let object = self.object(handle);
        let (min, max) = if attr.is_dir() {
            (times.acdirmin, times.acdirmax)
        } else {
            (times.acregmin, times.acregmax)
        };
        let timeout = match &object.attr {
            Some(cached) if cached.attr.change() == attr.change() => {
                (cached.timeout * 2).clamp(min, max)
            }
            Some(_) => {
                object.changed_elsewhere();
                min
            }
            None => min,
        };
        object.attr = Some(CachedAttr {
            attr,
            fetched: Instant::now(),
            timeout,
        });
    }

    /// Takes the attributes of a directory after a change this client made to it: if nobody else
    /// changed it meanwhile, the names cached under it stay valid; its listing does not.
    pub fn changed_by_us(&mut self, dir: &Handle, changed: Changed) {
        let times = self.times;
        let object = self.object(dir);
        let ours_alone = object
            .attr
            .as_ref()
            .is_some_and(|cached| cached.attr.change() == changed.before.change());
        if !ours_alone {
            object.changed_elsewhere();
        }
        object.listing = None;
        object.attr = Some(CachedAttr {
            attr: changed.after,
            fetched: Instant::now(),
            timeout: times.acdirmin,
        });
    }

    /// Takes a file's attributes after this client wrote it (WRITE, SETATTR).
    pub fn written_by_us(&mut self, file: &Handle, attr: Attr) {
        let times = self.times;
        let object = self.object(file);
        object.data = None;
        object.attr = Some(CachedAttr {
            attr,
            fetched: Instant::now(),
            timeout: times.acregmin,
        });
    }

    /// The cached name `name` in `dir`, if it may be trusted without asking the server. The
    /// caller has revalidated `dir`'s attributes first if they had expired.
    pub fn name(&self, dir: &Handle, name: &OsStr) -> Option<Name> {
        let object = self.objects.get(dir)?;
        let dentry = object.names.get(name)?;
        (dentry.verifier == object.verifier).then(|| dentry.name.clone())
    }

    /// Caches what the server said `name` in `dir` is.
    pub fn set_name(&mut self, dir: &Handle, name: &OsStr, found: Name) {
        if let Name::Is(handle) = &found {
            self.object(handle).found_as = Some((dir.clone(), name.to_owned()));
        }
        let object = self.object(dir);
        let verifier = object.verifier;
        object.names.insert(
            name.to_owned(),
            Dentry {
                name: found,
                verifier,
            },
        );
    }

    /// The server said `handle` is gone (`ESTALE`): forget it, and the name it was found under, so
    /// that the next look-up of that name asks the server.
    pub fn gone(&mut self, handle: &Handle) {
        if let Some(object) = self.objects.remove(handle) {
            if let Some((dir, name)) = object.found_as {
                if let Some(dir) = self.objects.get_mut(&dir) {
                    dir.names.remove(&name);
                }
            }
        }
    }

    /// Forgets what `name` in `dir` is, so that the next look-up asks the server.
    pub fn gone_name(&mut self, dir: &Handle, name: &OsStr) {
        if let Some(object) = self.objects.get_mut(dir) {
            object.names.remove(name);
        }
    }

    /// The cached listing of `dir`, if the directory has not changed since it was read.
    pub fn listing(&self, dir: &Handle) -> Option<Arc<Vec<Entry>>> {
        let object = self.objects.get(dir)?;
        let (change, entries) = object.listing.as_ref()?;
        let current = object.attr.as_ref()?.attr.change();
        (*change == current).then(|| Arc::clone(entries))
    }

    /// Caches a listing the server returned (READDIRPLUS: every entry's name and attributes too).
    pub fn set_listing(&mut self, dir: &Handle, entries: Vec<Entry>, dir_attr: Attr) {
        self.revalidated(dir, dir_attr);
        for entry in &entries {
            self.revalidated(&entry.handle, entry.attr);
            self.set_name(dir, &entry.name, Name::Is(entry.handle.clone()));
        }
        self.object(dir).listing = Some((dir_attr.change(), Arc::new(entries)));
    }

    /// The cached contents of `file`, if it has not changed since they were read.
    pub fn data(&self, file: &Handle) -> Option<Arc<Vec<u8>>> {
        let object = self.objects.get(file)?;
        let (change, bytes) = object.data.as_ref()?;
        let current = object.attr.as_ref()?.attr.change();
        (*change == current).then(|| Arc::clone(bytes))
    }

    /// Caches contents the server returned, read while the file had `attr`.
    pub fn set_data(&mut self, file: &Handle, attr: Attr, bytes: Vec<u8>) {
        self.revalidated(file, attr);
        self.object(file).data = Some((attr.change(), Arc::new(bytes)));
    }

    /// A lock was taken on `file`: its data and attributes must be read again.
    pub fn locked(&mut self, file: &Handle) {
        let object = self.object(file);
        object.data = None;
        if let Some(cached) = &mut object.attr {
            cached.timeout = Duration::ZERO;
        }
    }
}

impl Object {
    /// Someone else changed this object: nothing cached from it holds.
    fn changed_elsewhere(&mut self) {
        self.verifier += 1;
        self.listing = None;
        self.data = None;
    }
}
