//! The spool's cost per event: a durable append (its own transaction, committed
//! with `synchronous=FULL`, as the agent appends what a probe tick produced), and
//! the delivery cycle that follows (read a batch for the uplink, then the ack that
//! moves it to the `sent` log). Prints the file's bytes per event as well.
//!
//! cargo bench -p kaoqin-agent --bench spool

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaoqin_agent::event::{EventKind, UsageBasis};
use kaoqin_agent::spool::Spool;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A usage interval as the recorder writes one every 5 minutes per category.
fn usage(i: i64) -> (i64, EventKind) {
    let at = 1_796_000_000_000 + i * 300_000;
    (
        at,
        EventKind::Usage {
            account: "zhangsan".into(),
            start_ms: at - 300_000,
            end_ms: at,
            category: ["chat", "work", "media", "other"][i as usize % 4].into(),
            active_seconds: 240,
            basis: UsageBasis::Foreground,
        },
    )
}

fn open(dir: &tempfile::TempDir) -> Spool {
    Spool::open(&dir.path().join("spool.db"), 256 << 20)
        .unwrap()
        .0
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool");
    for n in [1usize, 10] {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir);
        let mut i = 0;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("append {n} event(s), durable"), |b| {
            b.iter(|| {
                let events: Vec<_> = (0..n)
                    .map(|_| {
                        i += 1;
                        usage(i)
                    })
                    .collect();
                black_box(spool.append(&events).unwrap())
            })
        });
    }
    // Read 500 for the uplink and acknowledge them, from a spool holding 500.
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(&dir);
    let mut i = 0;
    g.throughput(Throughput::Elements(500));
    g.bench_function("peek and ack 500 events", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let events: Vec<_> = (0..500)
                    .map(|_| {
                        i += 1;
                        usage(i)
                    })
                    .collect();
                spool.append(&events).unwrap();
                let started = Instant::now();
                let batch = spool.peek(500, 1 << 20).unwrap();
                let upto = batch.last().unwrap().seq;
                black_box(spool.ack(upto, 1_796_000_000_000).unwrap());
                spent += started.elapsed();
            }
            spent
        })
    });
    g.finish();

    // Space: bytes of the file (with its write-ahead log) per pending event.
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(&dir);
    let events: Vec<_> = (0..10_000).map(usage).collect();
    for chunk in events.chunks(10) {
        spool.append(chunk).unwrap();
    }
    drop(spool);
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "spool file: {bytes} bytes for 10,000 pending usage events ({} bytes an event)",
        bytes / 10_000
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
