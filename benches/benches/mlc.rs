//! Leaf sequencing of one 20 x 20 map (smooth-ish and noisy, fixed seeds)
//! at 5, 10 and 20 levels with each algorithm: discretisation plus
//! decomposition, the time per map of issue 7's benchmark. Engel under
//! interleaf constraints with both searches: `engel_icc` etc. the default
//! (schedule windows), `engel_fast_icc` etc. the fast one.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dosepaint_mlc::testmaps::{noisy_map, smooth_map};
use dosepaint_mlc::{Algorithm, ConstrainedSearch, LeafConstraints, SequencerParams};
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
    let (windows, fast) = (ConstrainedSearch::Windows, ConstrainedSearch::Fast);
    let free = LeafConstraints::default();
    let variants = [
        ("sweep", Algorithm::Sweep, free, windows),
        ("xia_verhey", Algorithm::XiaVerhey, free, windows),
        ("engel", Algorithm::Engel, free, windows),
        ("engel_icc", Algorithm::Engel, icc, windows),
        ("engel_tg", Algorithm::Engel, tg, windows),
        ("engel_icc_tg", Algorithm::Engel, icc_tg, windows),
        ("engel_fast_icc", Algorithm::Engel, icc, fast),
        ("engel_fast_tg", Algorithm::Engel, tg, fast),
        ("engel_fast_icc_tg", Algorithm::Engel, icc_tg, fast),
    ];
    for (kind, map) in &maps {
        for levels in [5u32, 10, 20] {
            for (name, alg, cons, search) in variants {
                let seq = SequencerParams::new(alg, levels)
                    .with_constraints(cons)
                    .with_constrained_search(search)
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
