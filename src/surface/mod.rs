//! The surfaces people use: the command line (`cli`), `check URL` (`check`), `inspect`
//! (`inspect`) and the blackbox-style exporter (`serve`).

pub mod approve;
pub mod card;
pub mod check;
pub mod cli;
pub mod execute;
pub mod from_blackbox;
pub mod inspect;
pub mod loading;
pub mod man;
pub mod serve;
