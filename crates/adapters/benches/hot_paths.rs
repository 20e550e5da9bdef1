//! The pure functions every sign-in or session check runs, timed one by one: parsing and
//! hashing a session cookie's token, hashing a link token under the secret, sealing and opening
//! the queued email, parsing an address. They explain the end-to-end figures of
//! `cargo xtask bench` by showing what they are not: each is microseconds or less, against
//! requests of a quarter to several milliseconds (docs/benchmarks.md).
//! `cargo xtask bench --micro` runs it.
#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use domain::{EmailAddress, LinkToken, ServerSecret, SessionToken, SignInCode};

const LINK: &[u8] = b"https://auth.example.com/api/auth/callback/email?callbackUrl=%2F&token=\
      k3v9W1pXo0bY2cZ8qR4tN6mL7jH5gF3dS1aQ9wE2rT0&email=alice%40example.com\nABCD-2345";

fn hot_paths(c: &mut Criterion) {
    let secret = ServerSecret::new(*b"bench-secret-bench-secret-bench!");
    let session = SessionToken::from_random_bytes([7; 32]);
    let cookie = session.encode();
    let link = LinkToken::from_random_bytes([9; 32]);
    let link_hash = link.hash(&secret);
    let associated = link_hash.to_hex();
    let sealed = domain::sealed::seal(&secret, associated.as_bytes(), [3; 24], LINK);
    let code = SignInCode::from_random_bytes([1; 8]);

    let mut group = c.benchmark_group("hot_paths");
    group.bench_function("session cookie: parse + SHA-256", |b| {
        b.iter(|| SessionToken::parse(black_box(&cookie)).map(|token| token.hash()))
    });
    group.bench_function("link token: HMAC under the secret", |b| b.iter(|| black_box(&link).hash(&secret)));
    group.bench_function("code: keyed hash", |b| b.iter(|| black_box(&code).hash(&secret, &link_hash)));
    group.bench_function("email body: seal", |b| {
        b.iter(|| domain::sealed::seal(&secret, associated.as_bytes(), [3; 24], black_box(LINK)))
    });
    group.bench_function("email body: open", |b| {
        b.iter(|| domain::sealed::open(&secret, associated.as_bytes(), black_box(&sealed)))
    });
    group.bench_function("address: parse and normalise", |b| {
        b.iter(|| EmailAddress::parse(black_box("Alice.Example+tag@Example.COM")))
    });
    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
