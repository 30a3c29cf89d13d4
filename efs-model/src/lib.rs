//! The EFS client model, as tests use it: [`Mount`] starts `latfs` over a backing directory and
//! unmounts it when dropped; several mounts of one backing directory are several NFS clients of
//! one server. [`unavailable`] says why it cannot run here, [`required`] whether it must. The model itself is the `latfs` binary (src/main.rs); see README.md.

mod mount;

pub use mount::{required, unavailable, Mount};
