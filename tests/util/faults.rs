//! Misbehaving peers for every probe kind: each first plays its protocol up to the point
//! where the fault should strike (PostgreSQL's SSLRequest answer, MySQL's greeting, SQL
//! Server's PRELOGIN answer, SSH's banner), then hangs, resets, trickles, or answers in
//! another protocol. Loopback only; each stops when dropped.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::servers::{Server, raw};

/// The protocol a peer pretends to speak until the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// TLS from the first byte (https, S3 over https): the client speaks first.
    Tls,
    /// Plain HTTP (http, S3 over http).
    Http,
    Postgres,
    Mysql,
    Mssql,
    Ssh,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts and never says a word.
    Silent,
    /// Plays the protocol up to TLS (or SSH's key exchange), reads the client's hello,
    /// and never answers it.
    StallAfterHello,
    /// As StallAfterHello, then resets the connection.
    ResetAfterHello,
    /// Answers in another protocol where this one was expected.
    WrongProtocol,
    /// Sends its first answer one byte per second.
    Trickle,
}

pub async fn peer(speaks: Speaks, fault: Fault) -> Server {
    raw(move |tcp| misbehave(tcp, speaks, fault)).await
}

/// A plain HTTP server whose every answer is a 200 with a body of `size` bytes, sent as
/// fast as the client reads it.
pub async fn huge_body(size: u64) -> Server {
    raw(move |mut tcp| async move {
        let _ = read_some(&mut tcp).await;
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: {size}\r\n\r\n");
        if tcp.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if tcp.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    })
    .await
}

async fn read_some(tcp: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 16 * 1024];
    match tcp.read(&mut buf).await {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// Reads the client's hello if it has not come with what was read before (an SSH client's
/// key exchange often arrives together with its banner).
async fn read_hello(tcp: &mut TcpStream) {
    let _ = tokio::time::timeout(Duration::from_millis(500), read_some(tcp)).await;
}

async fn hang(tcp: TcpStream) {
    let _held = tcp;
    std::future::pending::<()>().await;
}

/// A MySQL protocol-10 greeting offering TLS.
fn mysql_greeting() -> Vec<u8> {
    let mut payload = vec![0x0a];
    payload.extend_from_slice(b"10.11.6-MariaDB\0");
    payload.extend_from_slice(&7u32.to_le_bytes());
    payload.extend_from_slice(b"abcdefgh\0");
    // CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION
    payload.extend_from_slice(&(0x0001u16 | 0x0200 | 0x0800 | 0x8000).to_le_bytes());
    payload.push(0x21);
    payload.extend_from_slice(&[0x02, 0x00]);
    payload.extend_from_slice(&[0u8; 13]);
    let mut packet = vec![payload.len() as u8, 0, 0, 0];
    packet.extend_from_slice(&payload);
    packet
}

/// A TDS PRELOGIN answer: version, and encryption ON.
fn prelogin_answer() -> Vec<u8> {
    let payload = [0x00, 0x00, 0x0b, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xff, 16, 0, 0, 0, 0, 0, 0x01];
    let len = (8 + payload.len()) as u16;
    let mut packet = vec![0x04, 0x01];
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 1, 0]);
    packet.extend_from_slice(&payload);
    packet
}

/// The protocol up to the point where a TLS ClientHello (or SSH's key exchange) comes.
async fn preamble(tcp: &mut TcpStream, speaks: Speaks) -> Option<()> {
    match speaks {
        Speaks::Tls | Speaks::Http => {}
        Speaks::Postgres => {
            let mut request = [0u8; 8];
            tcp.read_exact(&mut request).await.ok()?;
            tcp.write_all(b"S").await.ok()?;
        }
        Speaks::Mysql => {
            tcp.write_all(&mysql_greeting()).await.ok()?;
            let mut request = [0u8; 36];
            tcp.read_exact(&mut request).await.ok()?;
        }
        Speaks::Mssql => {
            read_some(tcp).await;
            tcp.write_all(&prelogin_answer()).await.ok()?;
        }
        Speaks::Ssh => {
            tcp.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await.ok()?;
            read_some(tcp).await;
        }
    }
    Some(())
}

async fn misbehave(mut tcp: TcpStream, speaks: Speaks, fault: Fault) {
    match fault {
        Fault::Silent => hang(tcp).await,
        Fault::StallAfterHello => {
            if preamble(&mut tcp, speaks).await.is_some() {
                read_hello(&mut tcp).await;
            }
            hang(tcp).await
        }
        Fault::ResetAfterHello => {
            if preamble(&mut tcp, speaks).await.is_some() {
                read_hello(&mut tcp).await;
            }
            let _ = tcp.set_zero_linger();
        }
        Fault::WrongProtocol => {
            let answer: &[u8] = match speaks {
                Speaks::Ssh => b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
                Speaks::Postgres => {
                    let mut request = [0u8; 8];
                    let _ = tcp.read_exact(&mut request).await;
                    b"HTTP/1.1 400 Bad Request\r\n\r\n"
                }
                Speaks::Mssql | Speaks::Tls | Speaks::Http => {
                    read_some(&mut tcp).await;
                    b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
                }
                Speaks::Mysql => b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
            };
            let _ = tcp.write_all(answer).await;
            hang(tcp).await
        }
        Fault::Trickle => {
            let first: Vec<u8> = match speaks {
                Speaks::Http => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                Speaks::Ssh => b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(),
                Speaks::Mysql => mysql_greeting(),
                Speaks::Mssql => {
                    read_some(&mut tcp).await;
                    prelogin_answer()
                }
                Speaks::Postgres => {
                    let mut request = [0u8; 8];
                    let _ = tcp.read_exact(&mut request).await;
                    // The answer to the SSLRequest comes at once; the TLS that follows trickles.
                    let _ = tcp.write_all(b"S").await;
                    read_some(&mut tcp).await;
                    vec![0x16, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00, 0x00, 0x3c]
                }
                Speaks::Tls => {
                    read_some(&mut tcp).await;
                    vec![0x16, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00, 0x00, 0x3c]
                }
            };
            if speaks == Speaks::Http {
                read_some(&mut tcp).await;
            }
            for byte in first {
                if tcp.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            hang(tcp).await
        }
    }
}
