//! `ibq sim`: a gateway simulator speaking the TWS API protocol.
pub mod cli;
