//! Criterion benchmarks of the dose-influence products `D w` and `D^T g` on
//! a TG-119-sized synthetic matrix (about 650,000 rows, 2,900 beamlets,
//! 35 million non-zeros).

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_benches::{SyntheticScale, synthetic_plan};

fn products(c: &mut Criterion) {
    let plan = synthetic_plan(SyntheticScale::Full);
    let d = &plan.influence;
    eprintln!(
        "matrix: {} rows x {} beamlets, {} non-zeros, {:.1} MB",
        d.n_rows(),
        d.n_beamlets(),
        d.nnz(),
        d.memory_bytes() as f64 / 1e6
    );
    let w = vec![1.0; d.n_beamlets()];
    let g: Vec<f64> = (0..d.n_rows()).map(|r| (r % 7) as f64 - 3.0).collect();
    let mut dose = vec![0.0; d.n_rows()];
    let mut grad = vec![0.0; d.n_beamlets()];
    let mut group = c.benchmark_group("influence_tg119_like");
    group.sample_size(20);
    group.bench_function("dose_D_w", |b| {
        b.iter(|| d.dose_into(&w, &mut dose).unwrap());
    });
    group.bench_function("gradient_Dt_g", |b| {
        b.iter(|| d.transpose_product_into(&g, &mut grad).unwrap());
    });
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
