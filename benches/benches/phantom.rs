//! Criterion benchmarks of the synthetic phantoms: building the water box,
//! the TG-119 C-shape (3.6 M voxels) and the head-and-neck case (0.62 M
//! voxels, four blurred and noisy functional images), the separable Gaussian
//! blur alone, and the reference painted prescription.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_phantom::{
    WaterBoxParams, gaussian_blur, head_neck, head_neck_reference_prescription, tg119, water_box,
};

fn phantoms(c: &mut Criterion) {
    let mut group = c.benchmark_group("phantom");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("water_box_default_61x61x61", |b| {
        b.iter(|| water_box(black_box(&WaterBoxParams::default())).unwrap());
    });
    group.bench_function("tg119_167x167x129", |b| b.iter(|| tg119().unwrap()));
    group.bench_function("head_neck_101x101x61", |b| b.iter(|| head_neck().unwrap()));
    let hn = head_neck().unwrap();
    let fdg = hn.images.fdg_suv.clone().unwrap();
    group.bench_function("gaussian_blur_fwhm6_101x101x61", |b| {
        b.iter(|| gaussian_blur(black_box(&fdg), [6.0; 3]).unwrap());
    });
    group.bench_function("head_neck_reference_prescription", |b| {
        b.iter(|| head_neck_reference_prescription(black_box(&hn)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, phantoms);
criterion_main!(benches);
