//! What etcd disaster recovery keeps outside the cluster, as pure data: the cell's
//! configuration on disk with its keys and the choice of new masters (Clearwater), `etcdctl
//! snapshot` command lines (DC/OS), and the key dump file (Fleet). The `steps::disaster` family
//! does the I/O.

pub mod config;
pub mod dump;
pub mod etcdctl;

pub use config::{choose_masters, CellConfig, ConfigNode, MasterChoice, CONFIG_PREFIX};
pub use dump::{Dump, DumpEntry, DumpError};
