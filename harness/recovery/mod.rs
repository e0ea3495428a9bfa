//! etcd disaster recovery, the pure parts: the cell's configuration keys and the choice of new
//! masters (Clearwater), `etcdctl snapshot` command lines (DC/OS), and the key dump file
//! (Fleet). The runner's `recovery` steps do the I/O.

pub mod config;
pub mod dump;
pub mod etcdctl;

pub use config::{choose_masters, CellConfig, ConfigNode, MasterChoice, CONFIG_PREFIX};
pub use dump::{Dump, DumpEntry};
