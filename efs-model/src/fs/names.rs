//! Requests about names in a directory: look-up, create, remove, rename, link.

use std::{ffi::OsStr, path::Path};

use fuser::{INodeNo, RenameFlags};
use rustix::fs::OFlags;

use super::{lock, ModelFs, Open, Result};
use crate::{
    client::Name,
    latency::{Call, Rpc},
    server::{Attr, Handle},
};

impl ModelFs {
    pub(super) fn lookup_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
    ) -> Result<(Handle, Attr)> {
        let dir = self.handle(parent)?;
        if !self.nfs() {
            return call.rpc(Rpc::Lookup, || self.server.lookup(&dir, name));
        }
        self.revalidate_if_expired(call, &dir)?;
        let cached = lock(&self.client).name(&dir, name);
        match cached {
            Some(Name::Absent) => Err(libc::ENOENT),
            Some(Name::Is(handle)) => {
                let attr = lock(&self.client).any_attr(&handle);
                match attr {
                    Some(attr) => Ok((handle, attr)),
                    None => {
                        let attr = self.stale(
                            &handle,
                            call.rpc(Rpc::Getattr, || self.server.getattr(&handle)),
                        )?;
                        lock(&self.client).revalidated(&handle, attr);
                        Ok((handle, attr))
                    }
                }
            }
            None => match self.stale(
                &dir,
                call.rpc(Rpc::Lookup, || self.server.lookup(&dir, name)),
            ) {
                Ok((handle, attr)) => {
                    let mut client = lock(&self.client);
                    client.revalidated(&handle, attr);
                    client.set_name(&dir, name, Name::Is(handle.clone()));
                    Ok((handle, attr))
                }
                Err(libc::ENOENT) => {
                    lock(&self.client).set_name(&dir, name, Name::Absent);
                    Err(libc::ENOENT)
                }
                Err(e) => Err(e),
            },
        }
    }

    pub(super) fn mknod_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Result<(Handle, Attr)> {
        self.make_in(call, parent, name, Rpc::Create, |dir| {
            self.server.mknod(dir, name, mode)
        })
    }

    pub(super) fn mkdir_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Result<(Handle, Attr)> {
        self.make_in(call, parent, name, Rpc::Mkdir, |dir| {
            self.server.mkdir(dir, name, mode)
        })
    }

    pub(super) fn symlink_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
    ) -> Result<(Handle, Attr)> {
        self.make_in(call, parent, name, Rpc::Symlink, |dir| {
            self.server.symlink(dir, name, target)
        })
    }

    /// MKNOD, MKDIR, SYMLINK: one round trip that makes a name, which this client then knows.
    fn make_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
        rpc: Rpc,
        make: impl FnOnce(&Handle) -> Result<(Handle, Attr, crate::server::Changed)>,
    ) -> Result<(Handle, Attr)> {
        let dir = self.handle(parent)?;
        let (handle, attr, changed) = self.named(&dir, name, call.rpc(rpc, || make(&dir)))?;
        self.new_object(&dir, name, &handle, attr, changed);
        Ok((handle, attr))
    }

    /// CREATE: the new file, already open.
    pub(super) fn create_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(Handle, Attr, fuser::FileHandle)> {
        let dir = self.handle(parent)?;
        let flags = OFlags::from_bits_retain(flags as u32)
            & (OFlags::RDONLY
                | OFlags::WRONLY
                | OFlags::RDWR
                | OFlags::APPEND
                | OFlags::TRUNC
                | OFlags::EXCL);
        let (fd, handle, attr, changed) = self.named(
            &dir,
            name,
            call.rpc(Rpc::Create, || self.server.create(&dir, name, mode, flags)),
        )?;
        self.new_object(&dir, name, &handle, attr, changed);
        let fh = self.add_open(Open::File {
            handle: handle.clone(),
            fd,
        });
        Ok((handle, attr, fh))
    }

    pub(super) fn remove_in(
        &self,
        call: &mut Call<'_>,
        parent: INodeNo,
        name: &OsStr,
        directory: bool,
    ) -> Result<()> {
        let dir = self.handle(parent)?;
        let gone = lock(&self.client).name(&dir, name);
        let changed = self.named(
            &dir,
            name,
            call.rpc(Rpc::Remove, || self.server.remove(&dir, name, directory)),
        )?;
        self.our_change(&dir, changed, name, Name::Absent);
        if let (true, Some(Name::Is(handle))) = (directory, gone) {
            lock(&self.client).gone(&handle);
        }
        Ok(())
    }

    pub(super) fn rename_in(
        &self,
        call: &mut Call<'_>,
        (parent, name): (INodeNo, &OsStr),
        (newparent, newname): (INodeNo, &OsStr),
        flags: RenameFlags,
    ) -> Result<()> {
        let from = self.handle(parent)?;
        let to = self.handle(newparent)?;
        let moved = match lock(&self.client).name(&from, name) {
            Some(Name::Is(handle)) => Some(handle),
            _ => None,
        };
        let renamed = call.rpc(Rpc::Rename, || {
            self.server.rename(&from, name, &to, newname, flags.bits())
        });
        let renamed = self.named(&to, newname, renamed);
        let (from_changed, to_changed) = self.named(&from, name, renamed)?;
        self.our_change(&from, from_changed, name, Name::Absent);
        if from != to {
            lock(&self.client).changed_by_us(&to, to_changed);
        }
        let mut client = lock(&self.client);
        match moved {
            Some(handle) => client.set_name(&to, newname, Name::Is(handle)),
            // Not known here: the next look-up asks the server.
            None => client.gone_name(&to, newname),
        }
        Ok(())
    }

    pub(super) fn link_in(
        &self,
        call: &mut Call<'_>,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
    ) -> Result<(Handle, Attr)> {
        let object = self.handle(ino)?;
        let dir = self.handle(newparent)?;
        let (attr, changed) = self.named(
            &dir,
            newname,
            call.rpc(Rpc::Link, || self.server.link(&object, &dir, newname)),
        )?;
        self.new_object(&dir, newname, &object, attr, changed);
        Ok((object, attr))
    }

    pub(super) fn readlink_of(&self, call: &mut Call<'_>, ino: INodeNo) -> Result<Vec<u8>> {
        let handle = self.handle(ino)?;
        self.stale(
            &handle,
            call.rpc(Rpc::Readlink, || self.server.readlink(&handle)),
        )
    }
}
