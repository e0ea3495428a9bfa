//! succession: a chaos and verification harness for clusters whose control plane elects
//! leaders (etcd and ZooKeeper quorums, and the tiers that depend on them).

pub mod availability;
pub mod backups;
pub mod base;
pub mod cluster;
pub mod cluster_views;
pub mod consistency;
pub mod exit;
pub mod explore;
pub mod injection;
pub mod invariants;
pub mod ledger;
pub mod node_tools;
pub mod preflight;
pub mod probe;
pub mod provider;
pub mod report;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod service;
pub mod session;
pub mod source;
pub mod spec;
pub mod standin;
pub mod static_ensemble;
pub mod steps;
pub mod supervisor;
pub mod workload;
