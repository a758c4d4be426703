//! Leaf sequencing of one 20 x 20 map (smooth-ish and noisy, fixed seeds)
//! at 5, 10 and 20 levels with each algorithm: discretisation plus
//! decomposition, the time per map of issue 7's benchmark.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dosepaint_mlc::testmaps::{noisy_map, smooth_map};
use dosepaint_mlc::{Algorithm, LeafConstraints, SequencerParams};
use std::hint::black_box;
use std::time::Duration;

fn bench_sequencing(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlc_20x20");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    let maps = [
        ("smooth", smooth_map(1, 20, 20)),
        ("noisy", noisy_map(1, 20, 20)),
    ];
    let icc = LeafConstraints {
        interdigitation: false,
        ..LeafConstraints::default()
    };
    let tg = LeafConstraints {
        tongue_and_groove: true,
        ..LeafConstraints::default()
    };
    let icc_tg = LeafConstraints {
        interdigitation: false,
        tongue_and_groove: true,
        ..LeafConstraints::default()
    };
    let variants = [
        ("sweep", Algorithm::Sweep, LeafConstraints::default()),
        (
            "xia_verhey",
            Algorithm::XiaVerhey,
            LeafConstraints::default(),
        ),
        ("engel", Algorithm::Engel, LeafConstraints::default()),
        ("engel_icc", Algorithm::Engel, icc),
        ("engel_tg", Algorithm::Engel, tg),
        ("engel_icc_tg", Algorithm::Engel, icc_tg),
    ];
    for (kind, map) in &maps {
        for levels in [5u32, 10, 20] {
            for (name, alg, cons) in variants {
                let seq = SequencerParams::new(alg, levels)
                    .with_constraints(cons)
                    .check()
                    .expect("valid parameters");
                group.bench_with_input(
                    BenchmarkId::new(format!("{name}/{kind}"), levels),
                    map,
                    |b, m| {
                        b.iter(|| {
                            let lv = seq.discretise(black_box(m)).expect("valid map");
                            seq.decompose(&lv)
                        });
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_sequencing);
criterion_main!(benches);
