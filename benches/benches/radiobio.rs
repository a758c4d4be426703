//! Criterion benchmarks of the radiobiological objectives an optimizer evaluates
//! every iteration, over 1,000,000 voxels: gEUD with gradient, log-TCP with
//! gradient, LKB NTCP with gradient (target: < 10 ms each on 2 cores), plus the
//! population TCP with gradient for reference.

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_radiobio::{
    Geud, Lkb, LqParams, OerModel, PoissonTcp, PopulationQuadrature, PopulationTcp, TcpVoxelData,
    VoxelValues,
};

const N: usize = 1_000_000;

/// Deterministic pseudo-random numbers in [0, 1) (64-bit LCG, top 53 bits).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn radiobio(c: &mut Criterion) {
    // Target-like doses 55-80 Gy, organ-like doses 0-60 Gy, relative volumes 0.5-1.5.
    let target: Vec<f64> = uniform(N, 1).iter().map(|u| 55.0 + 25.0 * u).collect();
    let organ: Vec<f64> = uniform(N, 2).iter().map(|u| 60.0 * u).collect();
    let weights: Vec<f64> = uniform(N, 3).iter().map(|u| 0.5 + u).collect();
    // Per-voxel clonogen density (ADC-like) and hypoxic alpha/beta (FMISO-like pO2).
    let density: Vec<f64> = uniform(N, 4).iter().map(|u| 1e6 + 9e6 * u).collect();
    let po2: Vec<f64> = uniform(N, 5).iter().map(|u| 60.0 * u).collect();
    let oxic = LqParams::new(0.35, 0.035).unwrap();
    let (mut alpha, mut beta) = (vec![0.0; N], vec![0.0; N]);
    OerModel::carlson_2006()
        .hypoxic_maps(&oxic, &po2, &mut alpha, &mut beta)
        .unwrap();
    let tcp = PoissonTcp::new(
        N,
        35,
        TcpVoxelData {
            clonogen_density_per_cm3: VoxelValues::PerVoxel(&density),
            voxel_volume_cm3: VoxelValues::Uniform(0.027),
            alpha_per_gy: VoxelValues::PerVoxel(&alpha),
            beta_per_gy2: VoxelValues::PerVoxel(&beta),
        },
    )
    .unwrap();
    let geud = Geud::new(-10.0).unwrap();
    let lkb = Lkb::new(39.9, 0.40, 0.25).unwrap();
    let mut grad = vec![0.0; N];
    eprintln!(
        "{N} voxels, {} rayon threads; gEUD(a=-10) = {:.3} Gy, ln TCP = {:.4e}, NTCP = {:.4}",
        rayon::current_num_threads(),
        geud.value_and_gradient(&target, &weights, &mut grad)
            .unwrap(),
        tcp.log_tcp_and_gradient(&target, &mut grad).unwrap(),
        lkb.ntcp_and_gradient(&organ, &weights, &mut grad).unwrap(),
    );

    let mut group = c.benchmark_group("radiobio_1M_voxels");
    group.sample_size(30);
    group.bench_function("geud_a-10_value_and_gradient", |b| {
        b.iter(|| {
            geud.value_and_gradient(&target, &weights, &mut grad)
                .unwrap()
        });
    });
    group.bench_function("log_tcp_value_and_gradient", |b| {
        b.iter(|| tcp.log_tcp_and_gradient(&target, &mut grad).unwrap());
    });
    group.bench_function("lkb_ntcp_n0.25_value_and_gradient", |b| {
        b.iter(|| lkb.ntcp_and_gradient(&organ, &weights, &mut grad).unwrap());
    });
    // A non-integer exponent (a = 1/0.7) takes the exp/ln path instead of squaring.
    let lkb_parotid = Lkb::new(46.0, 0.18, 0.70).unwrap();
    group.bench_function("lkb_ntcp_n0.70_value_and_gradient", |b| {
        b.iter(|| {
            lkb_parotid
                .ntcp_and_gradient(&organ, &weights, &mut grad)
                .unwrap()
        });
    });
    group.bench_function("geud_a-10_value_only", |b| {
        b.iter(|| geud.value(&target, &weights).unwrap());
    });
    group.finish();

    let mut group = c.benchmark_group("radiobio_1M_voxels_population");
    group.sample_size(10);
    let pop = PopulationTcp::new(tcp, 0.08 / 0.35, PopulationQuadrature::default()).unwrap();
    group.bench_function("population_tcp_241_nodes_value_and_gradient", |b| {
        b.iter(|| pop.log_tcp_and_gradient(&target, &mut grad).unwrap());
    });
    group.finish();
}

criterion_group!(benches, radiobio);
criterion_main!(benches);
