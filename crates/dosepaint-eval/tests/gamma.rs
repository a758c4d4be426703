//! The 3-D gamma index: against a slow brute-force implementation, against
//! closed forms, and with bad input.

use approx::assert_relative_eq;
use dosepaint_core::{Grid, Structure, StructureRole, Volume};
use dosepaint_eval::{Error, GammaParams, GammaResult, Normalization, resample_dose};
use proptest::prelude::*;

/// The definition, evaluated the slow way: every sub-grid offset of the
/// search sphere, the evaluated dose from core's trilinear sampling at the
/// patient point. Returns the gamma map (NaN not evaluated, inf uncovered)
/// and the number of passing voxels.
fn brute_force(
    reference: &Volume<f32>,
    evaluated: &Volume<f32>,
    p: &GammaParams,
) -> (Vec<f64>, usize) {
    let grid = reference.grid();
    let ref_max = reference
        .as_slice()
        .iter()
        .fold(0.0f64, |m, &d| m.max(f64::from(d)));
    let norm = match p.normalization {
        Normalization::Global { dose_gy } => dose_gy.unwrap_or(ref_max),
        Normalization::Local => ref_max,
    };
    let cutoff = p.lower_dose_cutoff_percent / 100.0 * norm;
    let n = f64::from(p.interpolation_fraction);
    let dta = p.distance_to_agreement_mm;
    let search = p.max_search_distance_mm.unwrap_or(2.0 * dta);
    let steps = search * n / dta;
    let max_m2 = (steps * steps * (1.0 + 1e-12)).floor() as i64;
    let mm = (max_m2 as f64).sqrt().floor() as i64;
    let dir = grid.direction();
    let mut map = Vec::new();
    let mut passed = 0;
    for lin in 0..grid.n_voxels() {
        let v = grid.voxel_index(lin);
        let r = f64::from(reference.as_slice()[lin]);
        if r < cutoff {
            map.push(f64::NAN);
            continue;
        }
        let dd = p.dose_difference_percent / 100.0
            * match p.normalization {
                Normalization::Global { .. } => norm,
                Normalization::Local => r,
            };
        let centre = grid.voxel_center(v);
        let mut best = f64::INFINITY;
        for mk in -mm..=mm {
            for mj in -mm..=mm {
                for mi in -mm..=mm {
                    let m2 = mi * mi + mj * mj + mk * mk;
                    if m2 > max_m2 {
                        continue;
                    }
                    let step = [mi, mj, mk].map(|m| m as f64 * dta / n);
                    let mut q = centre;
                    for a in 0..3 {
                        for c in 0..3 {
                            q[c] += step[a] * dir[a][c];
                        }
                    }
                    if let Some(e) = evaluated.sample_linear(q) {
                        let g2 = m2 as f64 / (n * n) + ((e - r) / dd).powi(2);
                        best = best.min(g2);
                    }
                }
            }
        }
        passed += usize::from(best <= 1.0);
        map.push(best.sqrt());
    }
    (map, passed)
}

fn assert_maps_agree(result: &GammaResult, brute: &[f64]) {
    for (n, (&g, &b)) in result.map.as_slice().iter().zip(brute).enumerate() {
        let g = f64::from(g);
        if b.is_nan() {
            assert!(g.is_nan(), "voxel {n}: {g} vs not evaluated");
        } else if b.is_infinite() {
            assert!(g.is_infinite(), "voxel {n}: {g} vs uncovered");
        } else {
            // Agreement to f32 precision (the two paths round the sub-grid
            // positions differently in the last bits).
            assert!((g - b).abs() <= 1e-5 * b.max(1.0), "voxel {n}: {g} vs {b}");
        }
    }
}

/// A random-looking but smooth dose: a blob plus ripples plus noise.
fn field(grid: &Grid, seed: u64, peak: f64, noise: f64) -> Volume<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (a, b, c) = (rand(), rand(), rand());
    let dims = grid.dims();
    Volume::from_fn(grid.clone(), |v| {
        let x: Vec<f64> = (0..3)
            .map(|k| v[k] as f64 / dims[k].max(1) as f64)
            .collect();
        let blob = (-((x[0] - a).powi(2) + (x[1] - b).powi(2) + (x[2] - c).powi(2)) * 3.0).exp();
        let ripple = 0.2 * (7.0 * x[0] + 5.0 * a).sin() * (4.0 * x[1] + 3.0 * b).cos();
        (peak * (blob + ripple + 0.3).max(0.0) + noise * rand()) as f32
    })
}

#[derive(Debug, Clone, Copy)]
enum EvalGrid {
    Same,
    Shifted,
    Coarser,
    Rotated,
}

fn eval_grid(reference: &Grid, kind: EvalGrid, u: f64) -> Grid {
    let s = reference.spacing_mm();
    let dims = reference.dims();
    let o = reference.origin_mm();
    match kind {
        EvalGrid::Same => reference.clone(),
        // Same lattice, a non-integer shift and fewer voxels along x.
        EvalGrid::Shifted => Grid::new(
            [dims[0] - 1, dims[1], dims[2] + 1],
            s,
            [
                o[0] + 0.37 * s[0] * u,
                o[1] - 0.61 * s[1],
                o[2] - 0.5 * s[2],
            ],
        )
        .unwrap(),
        EvalGrid::Coarser => Grid::new(
            [dims[0] - 1, dims[1] - 1, dims[2]],
            [s[0] * 1.3, s[1] * 1.1, s[2] * 0.9],
            [o[0] - 0.3, o[1] + 0.2 * u, o[2]],
        )
        .unwrap(),
        // 90 degrees about z: i runs along -y, j along +x.
        EvalGrid::Rotated => Grid::with_direction(
            [dims[1], dims[0], dims[2]],
            [s[1], s[0], s[2]],
            [
                o[0] - 0.4 * u,
                o[1] + (dims[0] as f64 - 1.0) * s[0],
                o[2] + 0.3,
            ],
            [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Identical pass counts and gamma maps (to f32 precision) as the brute
    /// force, for the same-lattice fast path and the general path, global and
    /// local, and the same pass count in pass-rate-only mode.
    #[test]
    fn matches_brute_force(
        dims in prop::array::uniform3(3usize..7),
        spacing in prop::array::uniform3(1.5f64..3.5),
        seed in 0u64..1000,
        kind in prop_oneof![Just(EvalGrid::Same), Just(EvalGrid::Shifted), Just(EvalGrid::Coarser), Just(EvalGrid::Rotated)],
        u in 0.0f64..1.0,
        dd in 1.0f64..5.0,
        dta in 1.5f64..4.0,
        n in 1u32..4,
        search_factor in 1.0f64..2.0,
        cutoff in 0.0f64..40.0,
        local in any::<bool>(),
        scale in 0.9f64..1.1,
    ) {
        let grid = Grid::new(dims, spacing, [-3.0, 5.0, 11.0]).unwrap();
        let reference = field(&grid, seed, 60.0, 3.0);
        let egrid = eval_grid(&grid, kind, u);
        let evaluated = field(&egrid, seed + 1, 60.0 * scale, 3.0);
        let params = GammaParams {
            dose_difference_percent: dd,
            distance_to_agreement_mm: dta,
            normalization: if local { Normalization::Local } else { Normalization::Global { dose_gy: None } },
            lower_dose_cutoff_percent: if local { cutoff.max(5.0) } else { cutoff },
            interpolation_fraction: n,
            max_search_distance_mm: Some(dta * search_factor),
        };
        let gamma = params.check().unwrap();
        let result = gamma.compute(&reference, &evaluated).unwrap();
        let (brute, passed) = brute_force(&reference, &evaluated, &params);
        assert_maps_agree(&result, &brute);
        prop_assert_eq!(result.passed_voxels, passed);
        prop_assert_eq!(result.evaluated_voxels, brute.iter().filter(|g| !g.is_nan()).count());
        let rate = gamma.pass_rate(&reference, &evaluated).unwrap();
        prop_assert_eq!(rate.passed_voxels, passed);
        prop_assert_eq!(rate.evaluated_voxels, result.evaluated_voxels);
    }

    /// Any pure shift d <= DTA (on the search sub-grid) passes everywhere,
    /// whatever the dose: the evaluated point r + d carries exactly R(r).
    #[test]
    fn pure_shift_within_dta_passes_everywhere(
        seed in 0u64..1000,
        m in prop::array::uniform3(-5i64..=5),
        noise in 0.0f64..30.0,
    ) {
        let n = 5u32;
        let dta = 3.0;
        prop_assume!(m.iter().map(|x| x * x).sum::<i64>() <= i64::from(n * n));
        let grid = Grid::new([9, 8, 7], [2.5, 2.0, 3.0], [0.0; 3]).unwrap();
        let reference = field(&grid, seed, 60.0, noise);
        let d = m.map(|x| x as f64 * dta / f64::from(n));
        let o = grid.origin_mm();
        let shifted = Grid::new(grid.dims(), grid.spacing_mm(), [o[0] + d[0], o[1] + d[1], o[2] + d[2]]).unwrap();
        let evaluated = reference.clone().with_grid(shifted).unwrap();
        let params = GammaParams { interpolation_fraction: n, distance_to_agreement_mm: dta, ..GammaParams::default() };
        let result = params.check().unwrap().compute(&reference, &evaluated).unwrap();
        prop_assert_eq!(result.passed_voxels, result.evaluated_voxels);
        let bound = (d.iter().map(|x| x * x).sum::<f64>()).sqrt() / dta;
        prop_assert!(result.max_gamma <= bound + 1e-6, "{} > {}", result.max_gamma, bound);
    }

    /// On a ramp of gradient g, a shift of d mm gives
    /// gamma = d / sqrt(DTA^2 + (dD / g)^2) for the continuous minimum; on
    /// the sub-grid of step h the value lies between it and
    /// sqrt(gamma^2 + (1/DTA^2 + g^2/dD^2) h^2 / 4).
    #[test]
    fn ramp_shift_bounds(d in 0.0f64..5.0, g in 0.2f64..3.0) {
        let (dta, dd_gy, h) = (3.0, 3.0, 0.3);
        let grid = Grid::new([40, 3, 3], [2.0; 3], [0.0; 3]).unwrap();
        let reference = Volume::from_fn(grid.clone(), |[i, _, _]| (100.0 + g * 2.0 * i as f64) as f32);
        let evaluated = Volume::from_fn(grid.clone(), |[i, _, _]| (100.0 + g * (2.0 * i as f64 - d)) as f32);
        let params = GammaParams {
            normalization: Normalization::Global { dose_gy: Some(100.0) },
            lower_dose_cutoff_percent: 0.0,
            ..GammaParams::default()
        };
        let result = params.check().unwrap().compute(&reference, &evaluated).unwrap();
        let exact = d / (dta * dta + (dd_gy / g).powi(2)).sqrt();
        let upper = (exact * exact + (1.0 / (dta * dta) + g * g / (dd_gy * dd_gy)) * h * h / 4.0).sqrt();
        // Interior voxels (the search reaches 6 mm = 3 voxels).
        for i in 4..36 {
            let gi = f64::from(result.map[[i, 1, 1]]);
            prop_assert!(gi >= exact - 1e-5 && gi <= upper + 1e-5, "i {i}: {gi} not in [{exact}, {upper}]");
        }
    }
}

#[test]
fn shift_of_exactly_the_dta_passes() {
    // |d| = DTA exactly, d = (3, 4, 0) DTA / 5, on a noisy field: gamma <= 1
    // holds with equality at worst (the distance term is exactly 1).
    let grid = Grid::new([9, 8, 7], [2.5, 2.0, 3.0], [0.0; 3]).unwrap();
    let reference = field(&grid, 99, 60.0, 30.0);
    let dta = 3.0;
    let d = [3.0 * dta / 5.0, 4.0 * dta / 5.0, 0.0];
    let shifted = Grid::new(grid.dims(), grid.spacing_mm(), d).unwrap();
    let evaluated = reference.clone().with_grid(shifted).unwrap();
    let params = GammaParams {
        interpolation_fraction: 5,
        lower_dose_cutoff_percent: 0.0,
        ..GammaParams::default()
    };
    let gamma = params.check().unwrap();
    let result = gamma.compute(&reference, &evaluated).unwrap();
    assert_eq!(result.passed_voxels, grid.n_voxels());
    assert!(result.max_gamma <= 1.0);
    assert_eq!(
        gamma
            .pass_rate(&reference, &evaluated)
            .unwrap()
            .passed_voxels,
        grid.n_voxels()
    );
}

#[test]
fn ramp_shift_closed_form() {
    // Dose ramp of gradient g = 1 Gy/mm, dD = 3 % of 100 Gy = 3 Gy, DTA 3 mm:
    // a shift of d mm gives gamma = d / sqrt(DTA^2 + (dD/g)^2) = d / sqrt(18),
    // reached at a displacement t = d DTA^2 / (DTA^2 + (dD/g)^2) = d / 2,
    // which lies on the 0.3 mm sub-grid for d = 1.2 and d = 4.2.
    let grid = Grid::new([40, 3, 3], [2.0; 3], [0.0; 3]).unwrap();
    let reference = Volume::from_fn(grid.clone(), |[i, _, _]| (10.0 + 2.0 * i as f64) as f32);
    let params = GammaParams {
        normalization: Normalization::Global {
            dose_gy: Some(100.0),
        },
        lower_dose_cutoff_percent: 0.0,
        ..GammaParams::default()
    };
    let gamma = params.check().unwrap();
    for d in [1.2, 4.2] {
        let evaluated =
            Volume::from_fn(grid.clone(), |[i, _, _]| (10.0 + 2.0 * i as f64 - d) as f32);
        let result = gamma.compute(&reference, &evaluated).unwrap();
        let expected = d / 18.0f64.sqrt();
        for i in 4..36 {
            assert_relative_eq!(f64::from(result.map[[i, 1, 1]]), expected, epsilon = 2e-6);
        }
        // d = 4.2 mm > DTA still passes on this gradient (gamma 0.99): a pass
        // does not imply a shift within the DTA.
        assert!(expected < 1.0);
    }
}

#[test]
fn uniform_field_scaled_by_s() {
    // D_eval = (1 + s) D_ref on a uniform field: every candidate point has
    // the same dose difference s D, so gamma = |s| / dD everywhere (global
    // and local alike), edges included.
    let grid = Grid::new([8, 7, 6], [2.5; 3], [0.0; 3]).unwrap();
    let reference = Volume::filled(grid.clone(), 50.0f32);
    for s in [0.01, 0.02, 0.05, -0.04] {
        let evaluated = Volume::filled(grid.clone(), (50.0 * (1.0 + s)) as f32);
        for normalization in [
            Normalization::Global { dose_gy: None },
            Normalization::Local,
        ] {
            let params = GammaParams {
                normalization,
                ..GammaParams::default()
            };
            let result = params
                .check()
                .unwrap()
                .compute(&reference, &evaluated)
                .unwrap();
            for &g in result.map.as_slice() {
                assert_relative_eq!(f64::from(g), f64::abs(s) / 0.03, epsilon = 1e-6);
            }
            let expected = if f64::abs(s) <= 0.03 {
                result.evaluated_voxels
            } else {
                0
            };
            assert_eq!(result.passed_voxels, expected);
            assert_eq!(result.evaluated_voxels, grid.n_voxels());
        }
    }
}

#[test]
fn cutoff_region_and_statistics() {
    let grid = Grid::new([12, 10, 8], [2.5; 3], [0.0; 3]).unwrap();
    let reference = field(&grid, 7, 60.0, 0.0);
    let evaluated = reference.map(|d| d * 1.01);
    let params = GammaParams {
        lower_dose_cutoff_percent: 50.0,
        ..GammaParams::default()
    };
    let gamma = params.check().unwrap();
    let result = gamma.compute(&reference, &evaluated).unwrap();
    let max = reference.as_slice().iter().fold(0.0f32, |m, &d| m.max(d));
    let above = reference
        .as_slice()
        .iter()
        .filter(|&&d| f64::from(d) >= 0.5 * f64::from(max))
        .count();
    assert_eq!(result.evaluated_voxels, above);
    assert_relative_eq!(result.cutoff_dose_gy, 0.5 * f64::from(max), epsilon = 1e-9);
    assert_relative_eq!(result.normalization_dose_gy, f64::from(max), epsilon = 1e-9);
    for (g, d) in result.map.as_slice().iter().zip(reference.as_slice()) {
        assert_eq!(g.is_nan(), f64::from(*d) < 0.5 * f64::from(max));
    }
    assert_eq!(result.passed_voxels, result.evaluated_voxels);
    assert_relative_eq!(result.pass_rate, 1.0);
    assert!(result.mean_gamma > 0.0 && result.mean_gamma <= result.max_gamma);
    assert!(result.max_gamma <= 1.0 / 3.0 + 1e-6);
    // Restricted to a region.
    let region = Structure::new(
        "body",
        StructureRole::External,
        Volume::from_fn(grid.clone(), |[i, _, _]| i < 6),
    )
    .unwrap();
    let within = gamma
        .compute_within(&reference, &evaluated, &region)
        .unwrap();
    assert!(within.evaluated_voxels < result.evaluated_voxels);
    for (n, g) in within.map.as_slice().iter().enumerate() {
        if grid.voxel_index(n)[0] >= 6 {
            assert!(g.is_nan());
        } else {
            assert_eq!(g.to_bits(), result.map.as_slice()[n].to_bits());
        }
    }
    let rate = gamma
        .pass_rate_within(&reference, &evaluated, &region)
        .unwrap();
    assert_eq!(rate.evaluated_voxels, within.evaluated_voxels);
}

#[test]
fn same_result_for_any_thread_count() {
    let grid = Grid::new([20, 18, 12], [2.5; 3], [0.0; 3]).unwrap();
    let reference = field(&grid, 3, 60.0, 2.0);
    let evaluated = field(&grid, 4, 62.0, 2.0);
    let gamma = GammaParams::default().check().unwrap();
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| gamma.compute(&reference, &evaluated).unwrap())
    };
    let (one, two) = (run(1), run(2));
    assert!(
        one.map
            .as_slice()
            .iter()
            .zip(two.map.as_slice())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert_eq!(one.mean_gamma.to_bits(), two.mean_gamma.to_bits());
    assert!(one.pass_rate < 1.0 && one.pass_rate > 0.0);
}

#[test]
fn failing_voxels_never_show_as_one() {
    let grid = Grid::new([6, 6, 6], [2.5; 3], [0.0; 3]).unwrap();
    let reference = field(&grid, 11, 60.0, 20.0);
    let evaluated = field(&grid, 12, 60.0, 20.0);
    let result = GammaParams::default()
        .check()
        .unwrap()
        .compute(&reference, &evaluated)
        .unwrap();
    let shown = result.map.as_slice().iter().filter(|g| **g <= 1.0).count();
    assert_eq!(shown, result.passed_voxels);
}

#[test]
fn uncovered_and_search_limited_voxels() {
    // The evaluated grid covers only the first half of the reference in x.
    let grid = Grid::new([12, 4, 4], [2.0; 3], [0.0; 3]).unwrap();
    let reference = Volume::filled(grid.clone(), 40.0f32);
    let half = Grid::new([5, 4, 4], [2.0; 3], [0.0; 3]).unwrap();
    let evaluated = Volume::filled(half.clone(), 40.0f32);
    let params = GammaParams {
        max_search_distance_mm: Some(3.0),
        ..GammaParams::default()
    };
    let result = params
        .check()
        .unwrap()
        .compute(&reference, &evaluated)
        .unwrap();
    // The evaluated box ends at x = 9 mm; the nearest sub-grid point (step
    // 0.3 mm) inside it lies 1.2 mm from x = 10 and 3 mm from x = 12;
    // reference voxels beyond 12 mm find no evaluated dose within 3 mm.
    let expected = [0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 1.0];
    for i in 0..12 {
        let g = result.map[[i, 1, 1]];
        match expected.get(i) {
            Some(&e) => assert_relative_eq!(f64::from(g), e, epsilon = 1e-6),
            None => assert!(g.is_infinite(), "i {i}: {g}"),
        }
    }
    assert_eq!(result.uncovered_voxels, 5 * 16);
    assert_eq!(result.passed_voxels, 7 * 16);
    // A large dose difference: gamma above R_search / DTA = 2 is flagged.
    let far = Volume::filled(grid.clone(), 80.0f32);
    let r = GammaParams::default()
        .check()
        .unwrap()
        .compute(&reference, &far)
        .unwrap();
    assert_eq!(r.search_limited_voxels, grid.n_voxels());
    assert_relative_eq!(r.max_gamma, 40.0 / (0.03 * 40.0), epsilon = 1e-9);
}

#[test]
fn partial_overlap_on_different_grids_matches_brute_force() {
    // The evaluated grid (other spacing, so the general search) covers only
    // the start of the reference: far voxels are rejected without a search,
    // those within reach of its box are searched up to the box.
    let grid = Grid::new([12, 4, 4], [2.0; 3], [0.0; 3]).unwrap();
    let reference = field(&grid, 21, 50.0, 1.0);
    let small = Grid::new([4, 5, 4], [2.2, 1.9, 2.1], [0.3, -0.5, 0.2]).unwrap();
    let evaluated = field(&small, 22, 50.0, 1.0);
    for n in [2, 3] {
        let params = GammaParams {
            interpolation_fraction: n,
            lower_dose_cutoff_percent: 0.0,
            ..GammaParams::default()
        };
        let result = params
            .check()
            .unwrap()
            .compute(&reference, &evaluated)
            .unwrap();
        let (brute, passed) = brute_force(&reference, &evaluated, &params);
        assert_maps_agree(&result, &brute);
        assert_eq!(result.passed_voxels, passed);
        assert!(result.uncovered_voxels > 0);
        assert!(result.uncovered_voxels < result.evaluated_voxels);
    }
}

#[test]
fn resample_then_compare() {
    let grid = Grid::new([16, 12, 10], [2.5; 3], [0.0; 3]).unwrap();
    let reference = field(&grid, 5, 60.0, 0.0);
    let evaluated = reference.map(|d| d * 1.02);
    let gamma = GammaParams::default().check().unwrap();
    // On the same grid, resampling is the identity.
    let direct = gamma.compute(&reference, &evaluated).unwrap();
    let resampled = gamma.compute_resampled(&reference, &evaluated).unwrap();
    assert_eq!(direct.passed_voxels, resampled.passed_voxels);
    for (a, b) in direct.map.as_slice().iter().zip(resampled.map.as_slice()) {
        assert!((a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6);
    }
    // A linear dose on a finer, offset grid: trilinear interpolation is exact
    // for it, so resampling first changes nothing inside the grid.
    let fine = Grid::new([30, 20, 14], [1.25, 1.5, 1.75], [-2.0, 1.0, 0.5]).unwrap();
    let linear = |g: &Grid, s: f64| {
        Volume::from_fn(g.clone(), |v| {
            let p = g.voxel_center(v);
            (s * (20.0 + 0.8 * p[0] + 0.3 * p[1] - 0.2 * p[2])) as f32
        })
    };
    let reference = linear(&grid, 1.0);
    let evaluated = linear(&fine, 1.015);
    let direct = gamma.compute(&reference, &evaluated).unwrap();
    let resampled = gamma.compute_resampled(&reference, &evaluated).unwrap();
    let mut compared = 0;
    for (n, (a, b)) in direct
        .map
        .as_slice()
        .iter()
        .zip(resampled.map.as_slice())
        .enumerate()
    {
        let [i, j, k] = grid.voxel_index(n);
        let p = grid.voxel_center([i, j, k]);
        // Well inside the fine grid (x 0..34.25, y 1..29.5, z 0.5..23.25 mm).
        if p[0] > 8.0 && p[0] < 26.0 && p[1] > 9.0 && p[1] < 21.0 && p[2] > 8.0 && p[2] < 15.0 {
            assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
            compared += 1;
        }
    }
    assert!(compared > 20);
    // Reference voxels with no evaluated grid nearby get no evaluated dose.
    let far = Grid::new([4, 4, 4], [2.5; 3], [200.0, 0.0, 0.0]).unwrap();
    let away = gamma
        .compute_resampled(&reference, &Volume::filled(far, 20.0f32))
        .unwrap();
    assert_eq!(away.uncovered_voxels, away.evaluated_voxels);
    assert_eq!(away.passed_voxels, 0);
    // The helper on its own.
    let r = resample_dose(&evaluated, &grid).unwrap();
    let outside = (0..grid.n_voxels())
        .filter(|&n| {
            evaluated
                .sample_linear(grid.voxel_center(grid.voxel_index(n)))
                .is_none()
        })
        .count();
    assert_eq!(r.outside_voxels, outside);
    assert!(outside > 0);
    // A NaN or negative source dose is refused, with the voxel.
    let mut bad = evaluated.clone();
    bad[[1, 2, 3]] = f32::NAN;
    let err = resample_dose(&bad, &grid).unwrap_err();
    assert!(
        err.to_string().contains("dose to resample") && err.to_string().contains("(1, 2, 3)"),
        "{err}"
    );
    bad[[1, 2, 3]] = -1.0;
    assert!(resample_dose(&bad, &grid).is_err());
}

#[test]
fn result_serialises_with_nan_and_inf() {
    let grid = Grid::new([12, 4, 4], [2.0; 3], [0.0; 3]).unwrap();
    let reference = Volume::from_fn(grid.clone(), |[i, _, _]| if i == 0 { 0.0f32 } else { 40.0 });
    let evaluated = Volume::filled(Grid::new([5, 4, 4], [2.0; 3], [0.0; 3]).unwrap(), 40.0f32);
    let result = GammaParams::default()
        .check()
        .unwrap()
        .compute(&reference, &evaluated)
        .unwrap();
    assert!(result.map.as_slice().iter().any(|g| g.is_nan()));
    assert!(result.map.as_slice().iter().any(|g| g.is_infinite()));
    let json = serde_json::to_string(&result).unwrap();
    let back: GammaResult = serde_json::from_str(&json).unwrap();
    for (a, b) in back.map.as_slice().iter().zip(result.map.as_slice()) {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
    }
    assert_eq!(back.passed_voxels, result.passed_voxels);
    assert_eq!(back.params, result.params);
    // Parameters alone, as TOML.
    let params: GammaParams = toml::from_str(
        r#"dose_difference_percent = 2.0
           distance_to_agreement_mm = 2.0
           normalization = { kind = "local" }
           lower_dose_cutoff_percent = 10.0"#,
    )
    .unwrap();
    assert_eq!(params.normalization, Normalization::Local);
    assert_eq!(params.interpolation_fraction, 10);
}

#[test]
fn bad_input_gives_clear_errors() {
    let grid = Grid::new([6, 5, 4], [2.5; 3], [0.0; 3]).unwrap();
    let reference = Volume::filled(grid.clone(), 50.0f32);
    let gamma = GammaParams::default().check().unwrap();
    let mut nan = reference.clone();
    nan[[2, 3, 1]] = f32::NAN;
    let err = gamma.compute(&reference, &nan).unwrap_err();
    assert!(
        err.to_string().contains("evaluated dose") && err.to_string().contains("(2, 3, 1)"),
        "{err}"
    );
    let err = gamma.compute(&nan, &reference).unwrap_err();
    assert!(err.to_string().contains("reference dose"), "{err}");
    let mut neg = reference.clone();
    neg[[0, 0, 0]] = -1.0;
    assert!(gamma.pass_rate(&reference, &neg).is_err());
    assert!(gamma.compute_resampled(&reference, &nan).is_err());
    // Nothing to evaluate.
    let zero = Volume::filled(grid.clone(), 0.0f32);
    assert!(matches!(
        gamma.compute(&zero, &reference),
        Err(Error::Empty { .. })
    ));
    let params = GammaParams {
        normalization: Normalization::Global {
            dose_gy: Some(1000.0),
        },
        ..GammaParams::default()
    };
    assert!(matches!(
        params.check().unwrap().compute(&reference, &reference),
        Err(Error::Empty { .. })
    ));
    // A region on another grid.
    let other = Grid::new([6, 5, 5], [2.5; 3], [0.0; 3]).unwrap();
    let region =
        Structure::new("body", StructureRole::External, Volume::filled(other, true)).unwrap();
    assert!(matches!(
        gamma.compute_within(&reference, &reference, &region),
        Err(Error::GridMismatch { .. })
    ));
    // Impossible parameters.
    let d = GammaParams::default();
    for p in [
        GammaParams {
            dose_difference_percent: 0.0,
            ..d
        },
        GammaParams {
            dose_difference_percent: f64::NAN,
            ..d
        },
        GammaParams {
            distance_to_agreement_mm: -3.0,
            ..d
        },
        GammaParams {
            lower_dose_cutoff_percent: 100.0,
            ..d
        },
        GammaParams {
            lower_dose_cutoff_percent: -1.0,
            ..d
        },
        GammaParams {
            normalization: Normalization::Local,
            lower_dose_cutoff_percent: 0.0,
            ..d
        },
        GammaParams {
            normalization: Normalization::Global { dose_gy: Some(0.0) },
            ..d
        },
        GammaParams {
            interpolation_fraction: 0,
            ..d
        },
        GammaParams {
            max_search_distance_mm: Some(2.0),
            ..d
        },
        GammaParams {
            max_search_distance_mm: Some(f64::INFINITY),
            ..d
        },
        GammaParams {
            interpolation_fraction: 1000,
            ..d
        },
    ] {
        assert!(p.check().is_err(), "{p:?}");
    }
}
