//! The connection layer: name resolution and TCP with a read budget (`net`), TLS with the
//! recording verifier (`tls`), SSH (`ssh`) and shared SSH tunnels (`tunnel`), HTTP over
//! those streams (`httpc`), and the per-attempt context that carries the resources they
//! share (`context`). Every kind connects through here, so a transport added here reaches
//! every kind.

pub mod context;
pub mod dial;
pub mod httpc;
pub mod net;
pub mod proxy;
pub mod ssh;
pub mod tls;
pub mod tunnel;
