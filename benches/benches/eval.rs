//! Criterion benchmarks of dosepaint-eval.
//!
//! - Gamma 3 %/3 mm, global, 10 % cut-off, interpolation fraction 10, on a
//!   100 x 100 x 60 grid of 2.5 mm voxels: a Gaussian dose blob versus a copy
//!   scaled by 1.02 and shifted by 1 mm (target: under 0.25 s on 2 cores; the
//!   usual Python tool, pymedphys, needs about 4.7 s). Gamma map, and pass
//!   rate only.
//! - DVH and all metrics (min, mean, max, D2/D50/D95/D98, HI, gEUD, a few
//!   Vx and Dcc, Paddick conformity index) of a 600,000-voxel structure in a
//!   1.7-million-voxel grid (target: under 10 ms).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_core::{Grid, Structure, StructureRole, Volume};
use dosepaint_eval::{
    DEFAULT_BIN_WIDTH_GY, DoseSample, DoseStatistics, Dvh, GammaParams, conformity,
};

/// A Gaussian blob of `peak` Gy and standard deviation `sigma` mm centred in
/// the grid, shifted by `shift_mm` along x and scaled by `scale`.
fn blob(grid: &Grid, sigma: f64, peak: f64, shift_mm: f64, scale: f64) -> Volume<f32> {
    let [nx, ny, nz] = grid.dims();
    let s = grid.spacing_mm();
    let centre = [
        (nx as f64 - 1.0) / 2.0 * s[0] + shift_mm,
        (ny as f64 - 1.0) / 2.0 * s[1],
        (nz as f64 - 1.0) / 2.0 * s[2],
    ];
    Volume::from_fn(grid.clone(), |v| {
        let p = grid.voxel_center(v);
        let r2: f64 = (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum();
        (scale * peak * (-r2 / (2.0 * sigma * sigma)).exp()) as f32
    })
}

fn gamma(c: &mut Criterion) {
    let grid = Grid::new([100, 100, 60], [2.5; 3], [0.0; 3]).unwrap();
    // sigma 30 mm: the 10 % cut-off keeps a sphere of radius 64 mm
    // (about 71,000 voxels, 12 % of the grid).
    let reference = blob(&grid, 30.0, 60.0, 0.0, 1.0);
    let evaluated = blob(&grid, 30.0, 60.0, 1.0, 1.02);
    let gamma = GammaParams::default().check().unwrap();
    let result = gamma.compute(&reference, &evaluated).unwrap();
    eprintln!(
        "gamma 3%/3mm: {} rayon threads, {} voxels evaluated, pass rate {:.4} %, mean gamma {:.4}, max {:.4}",
        rayon::current_num_threads(),
        result.evaluated_voxels,
        100.0 * result.pass_rate,
        result.mean_gamma,
        result.max_gamma
    );
    let mut group = c.benchmark_group("gamma_100x100x60_3pct_3mm");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("map", |b| {
        b.iter(|| black_box(gamma.compute(&reference, &evaluated).unwrap()));
    });
    group.bench_function("pass_rate_only", |b| {
        b.iter(|| black_box(gamma.pass_rate(&reference, &evaluated).unwrap()));
    });
    group.finish();
}

fn dvh(c: &mut Criterion) {
    // A sphere of radius 52.3 voxels (2 mm) in a 120^3 grid: 600,000 voxels.
    let grid = Grid::new([120, 120, 120], [2.0; 3], [-119.0; 3]).unwrap();
    let radius = 2.0 * 52.33;
    let ptv = Structure::new(
        "PTV",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |v| {
            let p = grid.voxel_center(v);
            p.iter().map(|x| x * x).sum::<f64>() <= radius * radius
        }),
    )
    .unwrap();
    // A dose from 0 to 80 Gy with structure (a gradient plus a ripple).
    let dose = Volume::from_fn(grid.clone(), |v| {
        let p = grid.voxel_center(v);
        (60.0 + 0.15 * p[0] + 5.0 * (p[1] / 7.0).sin() * (p[2] / 11.0).cos()).max(0.0) as f32
    });
    eprintln!("DVH structure: {} voxels", ptv.voxel_count());
    let all_metrics = || {
        let sample = DoseSample::from_structure(&dose, &ptv).unwrap();
        let dvh = Dvh::new(&sample, DEFAULT_BIN_WIDTH_GY).unwrap();
        let stats = DoseStatistics::new(&sample, &dvh, Some(-10.0)).unwrap();
        let v = dvh.volume_percent_at_dose(66.5).unwrap() + dvh.volume_cm3_at_dose(70.0).unwrap();
        let d = dvh.dose_at_volume_cm3(2.0).unwrap();
        let ci = conformity(&dose, &ptv, 60.0, None).unwrap();
        (stats, v, d, ci)
    };
    let (stats, _, _, ci) = all_metrics();
    eprintln!(
        "D98 {:.3} D95 {:.3} D50 {:.3} D2 {:.3} Gy, HI {:.4}, gEUD(-10) {:.3} Gy, Paddick CI(60 Gy) {:.4}",
        stats.d98_gy,
        stats.d95_gy,
        stats.d50_gy,
        stats.d2_gy,
        stats.homogeneity_index.unwrap(),
        stats.geud.unwrap().gy,
        ci.paddick
    );
    let mut group = c.benchmark_group("dvh_600k_voxels");
    group.sample_size(50);
    group.bench_function("dvh_and_all_metrics", |b| {
        b.iter(|| black_box(all_metrics()));
    });
    group.finish();
}

criterion_group!(benches, gamma, dvh);
criterion_main!(benches);
