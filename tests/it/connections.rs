//! Slow, idle and greedy clients cannot hold the server (security issue #15): a connection
//! that sends nothing, or trickles its headers, is closed after `header_read_timeout`; a
//! trickled body is answered 408 after `body_read_timeout`; an idle kept-alive connection is
//! closed after `idle_timeout`; connections beyond the caps are closed at once, and served
//! again once others close.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Options, TestApp};

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        tweak: Box::new(|s| {
            s.connections.header_read_timeout = Duration::from_secs(1);
            s.connections.body_read_timeout = Duration::from_secs(1);
            s.connections.idle_timeout = Duration::from_secs(2);
            s.connections.max_connections = 64;
            s.connections.max_connections_per_address = 4;
        }),
        ..Options::default()
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {limit:?}"
    );
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn silent_and_trickling_connections_are_closed_and_bodies_time_out() {
    let app = spawn().await;

    // Nothing sent at all.
    let mut silent = connect(&app).await;
    let (_, took) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );

    // Headers a byte at a time: the deadline counts from the first byte, not the last.
    let mut trickle = connect(&app).await;
    let started = Instant::now();
    let head = b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for b in head {
        if trickle.write_all(&[*b]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = match closed_after {
        Some(t) => t,
        None => until_closed(&mut trickle, Duration::from_secs(5)).await.1 + started.elapsed(),
    };
    assert!(
        closed_after < Duration::from_secs(4),
        "a trickled head was held for {closed_after:?}"
    );

    // A body that stops coming: 408 with a Vault error.
    let mut body = connect(&app).await;
    body.write_all(
        b"POST /v1/auth/token/lookup-self HTTP/1.1\r\nHost: x\r\nX-Vault-Token: test-root-token\r\nContent-Length: 100\r\n\r\n{\"a\":",
    )
    .await
    .unwrap();
    let (answer, took) = until_closed(&mut body, Duration::from_secs(6)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // A served connection kept alive, then idle: closed after idle_timeout, not before.
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (_, idle) = until_closed(&mut kept, Duration::from_secs(6)).await;
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(4),
        "idle for {idle:?}"
    );
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_closed_until_others_close() {
    let app = spawn().await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&app).await);
    }
    // Give the server a moment to have accepted all four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect(&app).await;
    let (_, took) = until_closed(&mut fifth, Duration::from_secs(2)).await;
    assert!(
        took < Duration::from_millis(800),
        "the fifth was held {took:?}"
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect(&app).await;
    again
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = until_closed(&mut again, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
