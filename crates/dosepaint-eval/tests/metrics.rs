//! DVH, dose metrics, clinical goals and dose-painting quality.

use approx::assert_relative_eq;
use dosepaint_core::{Grid, Prescription, Provenance, Structure, StructureRole, Volume};
use dosepaint_eval::{
    ClinicalGoal, ClinicalGoals, Comparison, DoseSample, DoseStatistics, Dvh, Error, Metric,
    PaintingParams, conformity, evaluate_goals, prescription_levels, q_map,
};
use proptest::prelude::*;

fn grid(dims: [usize; 3], spacing: f64) -> Grid {
    Grid::new(dims, [spacing; 3], [0.0; 3]).unwrap()
}

fn structure(name: &str, g: &Grid, f: impl Fn([usize; 3]) -> bool) -> Structure {
    Structure::new(name, StructureRole::Target, Volume::from_fn(g.clone(), f)).unwrap()
}

/// The exact order statistic: the largest dose D with V(D) >= v, where V(D)
/// is the volume of the voxels with dose >= D.
fn exact_dx(doses: &[f64], volumes: &[f64], v: f64) -> f64 {
    let mut idx: Vec<usize> = (0..doses.len()).collect();
    idx.sort_by(|&a, &b| doses[b].total_cmp(&doses[a]));
    let mut cum = 0.0;
    for &i in &idx {
        cum += volumes[i];
        if cum >= v * (1.0 - 1e-12) {
            return doses[i];
        }
    }
    doses[idx[idx.len() - 1]]
}

fn exact_volume_at(doses: &[f64], volumes: &[f64], d: f64) -> f64 {
    doses
        .iter()
        .zip(volumes)
        .filter(|(x, _)| **x >= d)
        .map(|(_, v)| v)
        .sum()
}

// ---------------------------------------------------------------- DVH

#[test]
fn dvh_of_a_uniform_spread_is_linear() {
    // 1000 voxels at 0.05, 0.15, ..., 99.95 Gy (one per 0.1 Gy bin): the
    // cumulative DVH is the straight line V(D) = 100 % (100 - D) / 100 apart
    // from the half bins at both ends, so D_x% = 100 - x exactly for x away
    // from the ends.
    let doses: Vec<f64> = (0..1000).map(|i| i as f64 * 0.1 + 0.05).collect();
    let s = DoseSample::uniform("spread", doses, 0.001).unwrap();
    let dvh = Dvh::new(&s, 0.1).unwrap();
    assert_eq!(dvh.n_bins(), 1000);
    for x in [2.0, 5.0, 50.0, 95.0, 98.0] {
        assert_relative_eq!(
            dvh.dose_at_volume_percent(x).unwrap(),
            100.0 - x,
            epsilon = 1e-9
        );
        assert_relative_eq!(
            dvh.volume_percent_at_dose(100.0 - x).unwrap(),
            x,
            epsilon = 1e-9
        );
    }
    assert_relative_eq!(dvh.d2_gy(), 98.0, epsilon = 1e-9);
    assert_relative_eq!(dvh.d98_gy(), 2.0, epsilon = 1e-9);
    // ICRU 83 HI = (D2 - D98) / D50 = 96 / 50.
    assert_relative_eq!(dvh.homogeneity_index().unwrap(), 1.92, epsilon = 1e-9);
    // Ends: D0 = Dmax, D100 = Dmin, V(Dmin) = 100 %, V(Dmax) = 0.
    assert_relative_eq!(dvh.dose_at_volume_percent(0.0).unwrap(), 99.95);
    assert_relative_eq!(dvh.dose_at_volume_percent(100.0).unwrap(), 0.05);
    assert_relative_eq!(dvh.volume_percent_at_dose(0.05).unwrap(), 100.0);
    assert_relative_eq!(dvh.volume_percent_at_dose(99.95).unwrap(), 0.0);
    assert_relative_eq!(dvh.volume_percent_at_dose(150.0).unwrap(), 0.0);
    // Exact statistics.
    assert_relative_eq!(dvh.mean_gy(), 50.0, epsilon = 1e-9);
    assert_relative_eq!(dvh.total_volume_cm3(), 1.0, epsilon = 1e-12);
    // D_x cc: the hottest 0.25 cm^3 = 25 %.
    assert_relative_eq!(dvh.dose_at_volume_cm3(0.25).unwrap(), 75.0, epsilon = 1e-9);
}

#[test]
fn dvh_of_a_uniform_dose_steps_at_that_dose() {
    let g = grid([5, 5, 5], 2.0);
    let dose = Volume::filled(g.clone(), 60.0f32);
    let ptv = structure("PTV", &g, |_| true);
    let dvh = Dvh::from_structure(&dose, &ptv, 0.01).unwrap();
    assert_relative_eq!(dvh.volume_percent_at_dose(60.0).unwrap(), 100.0);
    assert_relative_eq!(dvh.volume_percent_at_dose(60.001).unwrap(), 0.0);
    for x in [0.0, 2.0, 50.0, 98.0, 100.0] {
        assert_relative_eq!(dvh.dose_at_volume_percent(x).unwrap(), 60.0);
    }
    assert_relative_eq!(dvh.homogeneity_index().unwrap(), 0.0);
    assert_relative_eq!(dvh.total_volume_cm3(), 125.0 * 0.008, epsilon = 1e-12);
}

#[test]
fn empty_bins_give_the_upper_end_of_the_plateau() {
    // Half the volume at 10 Gy, half at 20 Gy, bins of 1 Gy: V = 50 % on
    // [11, 20] (bins 11..19 are empty), so D50 is the largest such dose,
    // 20 Gy, the minimum dose of the hottest half.
    let s = DoseSample::uniform("two", vec![10.0, 20.0], 1.0).unwrap();
    let dvh = Dvh::new(&s, 1.0).unwrap();
    assert_relative_eq!(dvh.d50_gy(), 20.0);
    assert_relative_eq!(dvh.volume_percent_at_dose(15.0).unwrap(), 50.0);
    // Inside bin [10, 11) the cold voxel's volume is spread uniformly (the
    // bin convention), so 60 % of the volume gets at least 10.8 Gy: within
    // one bin of the exact 10 Gy.
    assert_relative_eq!(
        dvh.dose_at_volume_percent(60.0).unwrap(),
        10.8,
        epsilon = 1e-12
    );
    assert_relative_eq!(
        dvh.volume_percent_at_dose(10.8).unwrap(),
        60.0,
        epsilon = 1e-9
    );
}

#[test]
fn cumulative_and_differential_arrays_agree() {
    let s = DoseSample::new(
        "x",
        vec![0.0, 1.2, 3.7, 3.75, 9.99],
        vec![1.0, 2.0, 0.5, 0.5, 1.0],
    )
    .unwrap();
    let dvh = Dvh::new(&s, 0.5).unwrap();
    let diff = dvh.differential_cm3();
    let cum = dvh.cumulative_cm3();
    let edges = dvh.bin_edges_gy();
    assert_eq!(diff.len(), 20); // 9.99 Gy lies in bin 19, [9.5, 10)
    assert_eq!(cum.len(), 21);
    assert_eq!(edges.len(), 21);
    assert_relative_eq!(cum[0], 5.0);
    assert_relative_eq!(cum[20], 0.0);
    for k in 0..20 {
        assert_relative_eq!(cum[k] - cum[k + 1], diff[k], epsilon = 1e-12);
        // Exact at the edges.
        assert_relative_eq!(
            cum[k],
            exact_volume_at(s.doses_gy(), &[1.0, 2.0, 0.5, 0.5, 1.0], edges[k]),
            epsilon = 1e-12
        );
    }
    assert_relative_eq!(
        dvh.differential_percent().iter().sum::<f64>(),
        100.0,
        epsilon = 1e-9
    );
    assert_relative_eq!(dvh.cumulative_percent()[0], 100.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Dx from the histogram is within one bin width of the exact order
    /// statistic, V(D) within the mass of one bin, and both curves invert
    /// each other.
    #[test]
    fn dvh_matches_exact_statistics(
        doses in prop::collection::vec(0.0f64..80.0, 1..300),
        volumes_seed in prop::collection::vec(0.1f64..2.0, 300),
        width in 0.05f64..2.0,
        x in 0.0f64..100.0,
    ) {
        let volumes = volumes_seed[..doses.len()].to_vec();
        let s = DoseSample::new("p", doses.clone(), volumes.clone()).unwrap();
        let dvh = Dvh::new(&s, width).unwrap();
        let total: f64 = volumes.iter().sum();
        prop_assert!((dvh.total_volume_cm3() - total).abs() < 1e-9 * total);
        let dx = dvh.dose_at_volume_percent(x).unwrap();
        let exact = exact_dx(&doses, &volumes, x / 100.0 * total);
        prop_assert!((dx - exact).abs() <= width * (1.0 + 1e-9), "D{x}: {dx} vs {exact}");
        prop_assert!(dx >= s.min_gy() && dx <= s.max_gy());
        // V at an arbitrary dose: within the mass of the bin that holds it.
        let d = x * 0.8;
        let v = dvh.volume_cm3_at_dose(d).unwrap();
        let k = (d / width).floor() as usize;
        let bin_mass = dvh.differential_cm3().get(k).copied().unwrap_or(0.0);
        prop_assert!((v - exact_volume_at(&doses, &volumes, d)).abs() <= bin_mass + 1e-9);
        // Inverse relation: V(Dx) >= x and V just above Dx is below x.
        let target = x / 100.0 * total;
        prop_assert!(dvh.volume_cm3_at_dose(dx).unwrap() >= target * (1.0 - 1e-9) - 1e-12);
        if dx < s.max_gy() {
            prop_assert!(dvh.volume_cm3_at_dose(dx + 1e-6 * width).unwrap() <= target * (1.0 + 1e-9) + 1e-12);
        }
        // Monotone cumulative DVH.
        let c = dvh.cumulative_cm3();
        prop_assert!(c.windows(2).all(|w| w[0] >= w[1]));
        // Exact mean, min, max.
        let mean = doses.iter().zip(&volumes).map(|(d, v)| d * v).sum::<f64>() / total;
        prop_assert!((dvh.mean_gy() - mean).abs() < 1e-9 * (1.0 + mean));
    }

    /// Near-maximum, median and near-minimum are ordered.
    #[test]
    fn dose_levels_are_ordered(doses in prop::collection::vec(0.0f64..80.0, 1..200)) {
        let s = DoseSample::uniform("p", doses, 0.027).unwrap();
        let dvh = Dvh::new(&s, 0.01).unwrap();
        prop_assert!(dvh.max_gy() >= dvh.d2_gy());
        prop_assert!(dvh.d2_gy() >= dvh.d50_gy());
        prop_assert!(dvh.d50_gy() >= dvh.d95_gy());
        prop_assert!(dvh.d95_gy() >= dvh.d98_gy());
        prop_assert!(dvh.d98_gy() >= dvh.min_gy());
    }
}

#[test]
fn fractional_occupancy_weights_boundary_voxels() {
    let g = grid([4, 1, 1], 10.0); // 1 cm^3 voxels
    let dose = Volume::from_vec(g.clone(), vec![10.0f32, 20.0, 30.0, 40.0]).unwrap();
    let occupancy = Volume::from_vec(g.clone(), vec![0.0f32, 0.5, 1.0, 0.25]).unwrap();
    let s = DoseSample::from_occupancy("partial", &dose, &occupancy).unwrap();
    assert_eq!(s.len(), 3);
    assert_relative_eq!(s.total_volume_cm3(), 1.75);
    assert_relative_eq!(s.mean_gy(), (10.0 + 30.0 + 10.0) / 1.75);
    let same = DoseSample::new("partial", vec![20.0, 30.0, 40.0], vec![0.5, 1.0, 0.25]).unwrap();
    let (a, b) = (Dvh::new(&s, 0.5).unwrap(), Dvh::new(&same, 0.5).unwrap());
    assert_eq!(a, b);
    // Out-of-range occupancy is refused.
    let bad = Volume::from_vec(g, vec![0.0f32, 1.5, 1.0, 0.0]).unwrap();
    let err = DoseSample::from_occupancy("partial", &dose, &bad).unwrap_err();
    assert!(err.to_string().contains("occupancy"), "{err}");
    assert!(err.to_string().contains("(1, 0, 0)"), "{err}");
}

#[test]
fn geud_matches_the_reference_numbers() {
    // shared/reference/radiobiology.csv (Niemierko gEUD): two equal half
    // volumes at 60 and 70 Gy give 65.0 Gy for a = 1 and 63.07 Gy for a = -10.
    let s = DoseSample::new("halves", vec![60.0, 70.0], vec![0.5, 0.5]).unwrap();
    assert_relative_eq!(s.geud_gy(1.0).unwrap(), 65.0, epsilon = 1e-9);
    assert!((s.geud_gy(-10.0).unwrap() - 63.07).abs() < 0.01);
    // Through the statistics summary, with whole voxels.
    let g = grid([2, 1, 1], 10.0);
    let dose = Volume::from_vec(g.clone(), vec![60.0f32, 70.0]).unwrap();
    let stats =
        DoseStatistics::compute(&dose, &structure("T", &g, |_| true), 0.01, Some(-10.0)).unwrap();
    assert!((stats.geud.unwrap().gy - 63.07).abs() < 0.01);
    assert_relative_eq!(stats.mean_gy, 65.0, epsilon = 1e-9);
    assert!(s.geud_gy(f64::NAN).is_err());
}

#[test]
fn statistics_serialise() {
    let g = grid([10, 10, 10], 2.0);
    let dose = Volume::from_fn(g.clone(), |[i, j, k]| (i + j + k) as f32);
    let stats =
        DoseStatistics::compute(&dose, &structure("S", &g, |[i, _, _]| i > 2), 0.1, None).unwrap();
    // (serde_json parses floats to within one ulp, so compare with a tolerance.)
    let json = serde_json::to_string(&stats).unwrap();
    let back: DoseStatistics = serde_json::from_str(&json).unwrap();
    assert_eq!(back.n_voxels, stats.n_voxels);
    assert_relative_eq!(back.d95_gy, stats.d95_gy, max_relative = 1e-15);
    assert_relative_eq!(
        back.homogeneity_index.unwrap(),
        stats.homogeneity_index.unwrap(),
        max_relative = 1e-15
    );
    let dvh = Dvh::from_structure(&dose, &structure("S", &g, |[i, _, _]| i > 2), 0.1).unwrap();
    let back: Dvh = serde_json::from_str(&serde_json::to_string(&dvh).unwrap()).unwrap();
    assert_eq!(back.n_bins(), dvh.n_bins());
    for (a, b) in back.cumulative_cm3().iter().zip(dvh.cumulative_cm3()) {
        assert_relative_eq!(*a, *b, max_relative = 1e-14);
    }
    assert_relative_eq!(back.d95_gy(), dvh.d95_gy(), max_relative = 1e-14);
    // A tampered DVH is refused, not accepted and left to panic later.
    let mut v: serde_json::Value = serde_json::to_value(&dvh).unwrap();
    v["histogram"]["differential"] = serde_json::json!([1.0]);
    assert!(serde_json::from_value::<Dvh>(v).is_err());
}

#[test]
fn bad_input_gives_clear_errors() {
    let g = grid([4, 4, 4], 2.0);
    let other = grid([4, 4, 5], 2.0);
    let dose = Volume::filled(g.clone(), 50.0f32);
    // Mismatched grids.
    let s = structure("PTV", &other, |_| true);
    let err = DoseSample::from_structure(&dose, &s).unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }), "{err}");
    assert!(err.to_string().contains("PTV") && err.to_string().contains("resample"));
    // Empty structure.
    let empty = structure("Cord", &g, |_| false);
    let err = DoseSample::from_structure(&dose, &empty).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }) && err.to_string().contains("Cord"));
    // NaN and negative doses, with the voxel.
    let mut bad = dose.clone();
    bad[[1, 2, 3]] = f32::NAN;
    let err = DoseSample::from_structure(&bad, &structure("PTV", &g, |_| true)).unwrap_err();
    assert!(err.to_string().contains("(1, 2, 3)"), "{err}");
    bad[[1, 2, 3]] = -1.0;
    assert!(DoseSample::from_structure(&bad, &structure("PTV", &g, |_| true)).is_err());
    // ... but a bad dose outside the structure does not matter.
    assert!(DoseSample::from_structure(&bad, &structure("PTV", &g, |[i, _, _]| i == 0)).is_ok());
    assert!(DoseSample::new("x", vec![1.0, f64::NAN], vec![1.0, 1.0]).is_err());
    assert!(DoseSample::new("x", vec![1.0], vec![-1.0]).is_err());
    assert!(DoseSample::new("x", vec![1.0], vec![0.0]).is_err());
    assert!(DoseSample::new("x", vec![1.0, 2.0], vec![1.0]).is_err());
    assert!(DoseSample::new("x", vec![], vec![]).is_err());
    // Impossible parameters.
    let s = DoseSample::uniform("x", vec![1.0, 2.0], 1.0).unwrap();
    assert!(Dvh::new(&s, 0.0).is_err());
    assert!(Dvh::new(&s, f64::NAN).is_err());
    assert!(Dvh::new(&DoseSample::uniform("x", vec![1e9], 1.0).unwrap(), 0.01).is_err());
    let dvh = Dvh::new(&s, 0.01).unwrap();
    assert!(dvh.dose_at_volume_percent(101.0).is_err());
    assert!(dvh.dose_at_volume_percent(f64::NAN).is_err());
    assert!(dvh.dose_at_volume_cm3(3.0).is_err());
    assert!(dvh.dose_at_volume_cm3(2.0).is_ok());
    assert!(dvh.volume_cm3_at_dose(f64::INFINITY).is_err());
}

// ---------------------------------------------------------------- conformity

#[test]
fn paddick_conformity_index() {
    let g = grid([10, 10, 10], 1.0);
    let target = structure("PTV", &g, |[i, j, k]| i < 4 && j < 4 && k < 4);
    // Isodose shifted by one voxel in x: TV 64, PIV 64, TV_PIV 48.
    let dose = Volume::from_fn(g.clone(), |[i, j, k]| {
        if (1..5).contains(&i) && j < 4 && k < 4 {
            60.0f32
        } else {
            5.0
        }
    });
    let c = conformity(&dose, &target, 60.0, None).unwrap();
    assert_relative_eq!(c.target_volume_cm3, 0.064, epsilon = 1e-12);
    assert_relative_eq!(c.isodose_volume_cm3, 0.064, epsilon = 1e-12);
    assert_relative_eq!(c.target_in_isodose_cm3, 0.048, epsilon = 1e-12);
    assert_relative_eq!(c.paddick, 48.0 * 48.0 / (64.0 * 64.0), epsilon = 1e-12);
    assert_relative_eq!(c.coverage, 0.75);
    assert_relative_eq!(c.selectivity, 0.75);
    assert_relative_eq!(c.rtog, 1.0);
    // The isodose counted inside a body that cuts off its outer slab.
    let body = structure("Body", &g, |[i, _, _]| i < 4);
    let c = conformity(&dose, &target, 60.0, Some(&body)).unwrap();
    assert_relative_eq!(c.paddick, 48.0 * 48.0 / (64.0 * 48.0), epsilon = 1e-12);
    // Nothing covered.
    let c = conformity(&dose, &target, 100.0, None).unwrap();
    assert_relative_eq!(c.paddick, 0.0);
    assert!(conformity(&dose, &target, 0.0, None).is_err());
    // An invalid dose counts only where the isodose volume is counted.
    let mut bad = dose.clone();
    bad[[7, 2, 2]] = f32::NAN;
    let err = conformity(&bad, &target, 60.0, None).unwrap_err();
    assert!(err.to_string().contains("(7, 2, 2)"), "{err}");
    assert!(conformity(&bad, &target, 60.0, Some(&body)).is_ok());
    bad[[2, 2, 2]] = -3.0;
    let err = conformity(&bad, &target, 60.0, Some(&body)).unwrap_err();
    assert!(err.to_string().contains("(2, 2, 2)"), "{err}");
    assert!(conformity(&dose, &structure("E", &g, |_| false), 60.0, None).is_err());
}

// ---------------------------------------------------------------- goals

#[test]
fn goals_read_from_toml_and_json_and_write_back() {
    let text = r#"
        [[goals]]
        structure = "PTV"
        metric = "D95"
        op = ">="
        value_gy = 66.5

        [[goals]]
        structure = "Parotid L"
        metric = "mean"
        op = "<"
        value_gy = 26

        [[goals]]
        name = "cord"
        structure = "Cord"
        metric = "max"
        op = "<"
        value_gy = 45

        [[goals]]
        structure = "Lung"
        metric = "V20Gy"
        op = "<="
        value_percent = 30

        [[goals]]
        structure = "Lung"
        metric = "V5Gy"
        op = "<"
        value_cc = 1500

        [[goals]]
        structure = "Rectum"
        metric = "D2cc"
        op = "<"
        value_gy = 75

        [[goals]]
        structure = "GTV"
        metric = "gEUD(a=-10)"
        op = ">="
        value_gy = 70
    "#;
    let goals: ClinicalGoals = toml::from_str(text).unwrap();
    let g = &goals.goals;
    assert_eq!(g.len(), 7);
    assert_eq!(g[0].metric(), Metric::DosePercent(95.0));
    assert_eq!(g[0].op(), Comparison::AtLeast);
    assert_eq!(g[1].structure(), "Parotid L");
    assert_eq!(g[1].metric(), Metric::Mean);
    assert_eq!(g[2].name(), "cord");
    assert_eq!(g[3].metric(), Metric::VolumePercent(20.0));
    assert_eq!(g[4].metric(), Metric::VolumeCc(5.0));
    assert_eq!(g[5].metric(), Metric::DoseCc(2.0));
    assert_eq!(g[6].metric(), Metric::Geud(-10.0));
    // Round trips through TOML and JSON.
    let back: ClinicalGoals = toml::from_str(&toml::to_string(&goals).unwrap()).unwrap();
    assert_eq!(back, goals);
    let back: ClinicalGoals =
        serde_json::from_str(&serde_json::to_string(&goals).unwrap()).unwrap();
    assert_eq!(back, goals);
    // The text form, and parsing it back.
    assert_eq!(g[0].to_string(), "PTV D95% >= 66.5 Gy");
    assert_eq!(g[1].to_string(), "Parotid L mean < 26 Gy");
    assert_eq!(g[3].to_string(), "Lung V20Gy <= 30 %");
    for goal in &g[..] {
        let parsed: ClinicalGoal = goal.to_string().parse().unwrap();
        assert_eq!(parsed.metric(), goal.metric());
        assert_eq!(parsed.structure(), goal.structure());
        assert_eq!(parsed.op(), goal.op());
        assert_relative_eq!(parsed.threshold(), goal.threshold());
    }
}

#[test]
fn malformed_goals_are_refused() {
    let json = |s: &str| serde_json::from_str::<ClinicalGoal>(s);
    // Volume metric compared with a dose, dose metric with a volume.
    assert!(json(r#"{"structure":"Lung","metric":"V20Gy","op":"<","value_gy":30}"#).is_err());
    assert!(json(r#"{"structure":"PTV","metric":"D95","op":">=","value_percent":95}"#).is_err());
    // Two values, no value, unknown metric, bad comparison, bad parameter.
    assert!(
        json(r#"{"structure":"PTV","metric":"D95","op":">=","value_gy":1,"value_cc":2}"#).is_err()
    );
    assert!(json(r#"{"structure":"PTV","metric":"D95","op":">="}"#).is_err());
    assert!(json(r#"{"structure":"PTV","metric":"X95","op":">=","value_gy":1}"#).is_err());
    assert!(json(r#"{"structure":"PTV","metric":"D95","op":"=","value_gy":1}"#).is_err());
    assert!(json(r#"{"structure":"PTV","metric":"D195","op":">=","value_gy":1}"#).is_err());
    assert!(json(r#"{"structure":"","metric":"D95","op":">=","value_gy":1}"#).is_err());
    assert!(json(r#"{"structure":"P","metric":"V20","op":"<","value_cc":1}"#).is_err());
    let err = "PTV D95 >= 66.5".parse::<ClinicalGoal>().unwrap_err();
    assert!(err.to_string().contains("unit"), "{err}");
    assert!("PTV D95 66.5 Gy".parse::<ClinicalGoal>().is_err());
    assert!("V20Gy".parse::<Metric>().is_err()); // % or cc?
    assert!("gEUD(x)".parse::<Metric>().is_err());
    assert!(ClinicalGoal::new("PTV", Metric::Mean, Comparison::Below, f64::NAN).is_err());
}

#[test]
fn goals_evaluate_to_pass_or_fail_with_their_value() {
    // Ten 1 cm^3 voxels at 1..=10 Gy in one structure, a second structure
    // holding the first four.
    let g = Grid::new([10, 1, 1], [10.0; 3], [0.0; 3]).unwrap();
    let dose = Volume::from_fn(g.clone(), |[i, _, _]| (i + 1) as f32);
    let all = structure("Organ", &g, |_| true);
    let low = structure("Low", &g, |[i, _, _]| i < 4);
    let goals: Vec<ClinicalGoal> = [
        "Organ max < 10 Gy",    // max = 10: fails (strict)
        "Organ max <= 10 Gy",   // passes
        "Organ min >= 1 Gy",    // passes
        "Organ mean < 5.5 Gy",  // mean 5.5: fails
        "Organ V5Gy <= 60 %",   // 6 of 10 voxels >= 5 Gy at the edge: exactly 60 %
        "Organ V5.5Gy < 5 cc",  // 5 cm^3 (6..10 Gy; bin [5.5, 6) empty): fails
        "Low D100 >= 1 Gy",     // the minimum
        "Low D2cc >= 3 Gy",     // the hottest 2 cm^3 of {1,2,3,4} start at 3 Gy
        "Organ gEUD(1) < 6 Gy", // gEUD(a = 1) = mean
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let r = evaluate_goals(&goals, &dose, &[all.clone(), low.clone()], 0.5).unwrap();
    let expect = [
        (10.0, false),
        (10.0, true),
        (1.0, true),
        (5.5, false),
        (60.0, true),
        (5.0, false),
        (1.0, true),
        (3.0, true),
        (5.5, true),
    ];
    for (res, (value, passed)) in r.iter().zip(expect) {
        assert_relative_eq!(res.value, value, epsilon = 1e-9);
        assert_eq!(res.passed, passed, "{}", res.name);
    }
    assert_eq!(r[0].name, "Organ max < 10 Gy");
    let json = serde_json::to_string(&r[0]).unwrap();
    assert!(json.contains(r#""name":"Organ max < 10 Gy""#) && json.contains(r#""passed":false"#));
    // A goal on a structure that was not given.
    let missing: ClinicalGoal = "Heart mean < 4 Gy".parse().unwrap();
    let err = evaluate_goals(&[missing], &dose, &[all.clone(), low], 0.5).unwrap_err();
    assert!(matches!(err, Error::UnknownStructure { .. }));
    assert!(err.to_string().contains("Heart") && err.to_string().contains("\"Low\""));
    // A Dcc larger than the structure.
    let big: ClinicalGoal = "Organ D20cc < 4 Gy".parse().unwrap();
    assert!(evaluate_goals(&[big], &dose, &[all], 0.5).is_err());
}

#[test]
fn tg119_c_shape_goals_as_data() {
    // shared/reference/tg119.md (AAPM TG-119, Ezzell et al. 2009): C-shape
    // goals PTV D95 = 50 Gy, PTV D10 < 55 Gy, core D10 < 25 Gy (easier) and
    // < 10 Gy (harder). A synthetic plan: PTV uniform 49-53 Gy, core 5-20 Gy.
    let g = grid([20, 20, 1], 3.0);
    let ptv = structure("PTV", &g, |[i, _, _]| i >= 10);
    let core = structure("Core", &g, |[i, _, _]| i < 10);
    let dose = Volume::from_fn(g.clone(), |[i, j, _]| {
        let u = j as f32 / 19.0; // 0..1 along y
        if i >= 10 {
            49.0 + 4.0 * u
        } else {
            5.0 + 15.0 * u
        }
    });
    let goals: ClinicalGoals = serde_json::from_str(
        r#"{"goals": [
            {"structure": "PTV", "metric": "D95", "op": ">=", "value_gy": 50.0},
            {"structure": "PTV", "metric": "D10", "op": "<", "value_gy": 55.0},
            {"name": "core easier", "structure": "Core", "metric": "D10", "op": "<", "value_gy": 25.0},
            {"name": "core harder", "structure": "Core", "metric": "D10", "op": "<", "value_gy": 10.0}
        ]}"#,
    )
    .unwrap();
    let r = goals.evaluate(&dose, &[ptv, core], 0.01).unwrap();
    // PTV: 20 rows of 49 + 4 j/19 Gy; 95 % of the volume is above D95.
    assert!(!r[0].passed && r[0].value < 50.0 && r[0].value > 49.0);
    assert!(r[1].passed && r[1].value > 52.0 && r[1].value < 53.0);
    assert!(r[2].passed && r[2].value > 18.0 && r[2].value < 20.0);
    assert!(!r[3].passed);
    assert_eq!(r[2].name, "core easier");
}

// ---------------------------------------------------------------- dose painting

fn rx(g: &Grid, f: impl Fn([usize; 3]) -> f32) -> Prescription {
    Prescription::new(Volume::from_fn(g.clone(), f), 35, Provenance::default()).unwrap()
}

#[test]
fn quality_factor_and_qvh_closed_form() {
    // Q uniformly spread over [0.9, 1.1] (1000 voxel-centred values): the
    // fraction within +-5 % is 1/2, QF = mean |Q - 1| = 0.05 (the mean of a
    // uniform |U|, U in [-0.1, 0.1]), a quarter is cold, a quarter hot.
    let g = grid([1000, 1, 1], 3.0);
    let q = |i: usize| 0.9 + 0.2 * (i as f64 + 0.5) / 1000.0;
    let prescription = rx(&g, |_| 80.0);
    let dose = Volume::from_fn(g.clone(), |[i, _, _]| (80.0 * q(i)) as f32);
    let report = PaintingParams::default()
        .check()
        .unwrap()
        .evaluate(&dose, &prescription, &[])
        .unwrap();
    let t = &report.target;
    assert_eq!(t.n_voxels, 1000);
    assert_relative_eq!(t.quality_factor, 0.05, epsilon = 1e-6);
    assert_relative_eq!(t.within_tolerance, 0.5, epsilon = 1e-12);
    assert_relative_eq!(t.cold_fraction, 0.25, epsilon = 1e-12);
    assert_relative_eq!(t.hot_fraction, 0.25, epsilon = 1e-12);
    assert_relative_eq!(t.mean_q, 1.0, epsilon = 1e-6);
    assert_relative_eq!(t.cold_volume_cm3, 250.0 * 0.027, epsilon = 1e-9);
    // The cold voxels form one run of 250 face neighbours.
    assert_relative_eq!(t.largest_cold_cluster_cm3, 250.0 * 0.027, epsilon = 1e-9);
    // QVH: fraction with Q >= q is (1.1 - q) / 0.2 inside [0.9, 1.1].
    for qq in [0.92, 0.95, 1.0, 1.05, 1.08] {
        assert_relative_eq!(
            t.qvh.fraction_at_least(qq),
            (1.1 - qq) / 0.2,
            epsilon = 2e-3
        );
    }
    assert_relative_eq!(t.qvh.fraction_at_least(0.5), 1.0);
    assert_relative_eq!(t.qvh.fraction_at_least(1.5), 0.0);
    assert_relative_eq!(t.qvh.q_at_fraction(0.5).unwrap(), 1.0, epsilon = 2e-3);
    assert!(t.qvh.q_at_fraction(1.5).is_none());
    assert_relative_eq!(t.d98_gy, 80.0 * (0.9 + 0.2 * 0.02), epsilon = 0.02);
    assert_relative_eq!(t.mean_prescribed_gy, 80.0);
    // The per-voxel Q map.
    let qm = q_map(&dose, &prescription).unwrap();
    assert_relative_eq!(f64::from(qm[[10, 0, 0]]), q(10), epsilon = 1e-6);
}

#[test]
fn perfect_plan_has_qf_zero_and_a_step_qvh() {
    // shared/reference/dose_painting.md: a perfect plan has QF = 0 and a QVH
    // stepping from 1 to 0 at q = 1.
    let g = grid([6, 6, 6], 2.0);
    let prescription = rx(&g, |[i, j, k]| {
        if i > 0 {
            70.0 + (i + j + k) as f32
        } else {
            0.0
        }
    });
    let dose = prescription.target_gy().clone();
    let report = PaintingParams::default()
        .check()
        .unwrap()
        .evaluate(&dose, &prescription, &[])
        .unwrap();
    assert_relative_eq!(report.target.quality_factor, 0.0);
    assert_relative_eq!(report.target.within_tolerance, 1.0);
    assert_relative_eq!(report.target.qvh.fraction_at_least(0.999), 1.0);
    assert_relative_eq!(report.target.qvh.fraction_at_least(1.0), 1.0);
    assert_relative_eq!(report.target.qvh.fraction_at_least(1.001), 0.0);
    assert_eq!(report.target.n_voxels, 5 * 36);
    assert_relative_eq!(report.target.largest_cold_cluster_cm3, 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// At its bin edges the QVH is exactly the fraction of voxels with
    /// Q >= q, and QF is the mean |Q - 1|, for any plan.
    #[test]
    fn qvh_is_exact_at_bin_edges(
        plan in prop::collection::vec((60.0f32..90.0, 0.5f32..1.5), 27),
        width in 0.005f64..0.1,
    ) {
        let g = grid([3, 3, 3], 2.0);
        let prescription = rx(&g, |v| plan[g.linear_index(v)].0);
        let dose = Volume::from_fn(g.clone(), |v| {
            let (p, q) = plan[g.linear_index(v)];
            p * q
        });
        let params = PaintingParams { qvh_bin_width: width, ..PaintingParams::default() };
        let t = params.check().unwrap().evaluate(&dose, &prescription, &[]).unwrap().target;
        let q: Vec<f64> = plan.iter().map(|&(p, q)| f64::from(p * q) / f64::from(p)).collect();
        let qf = q.iter().map(|x| (x - 1.0).abs()).sum::<f64>() / 27.0;
        prop_assert!((t.quality_factor - qf).abs() < 1e-12);
        for (edge, frac) in t.qvh.edges().iter().zip(t.qvh.cumulative()) {
            let exact = q.iter().filter(|&&x| x >= *edge).count() as f64 / 27.0;
            prop_assert!((frac - exact).abs() < 1e-12, "q {edge}: {frac} vs {exact}");
        }
        let within = q.iter().filter(|&&x| (0.95..=1.05).contains(&x)).count() as f64 / 27.0;
        prop_assert!((t.within_tolerance - within).abs() < 1e-12);
    }
}

#[test]
fn split_by_boost_level() {
    // A SIB plan: 70 Gy to the whole target, 84 Gy to a boost subvolume
    // (shared/reference/dose_painting.md, dose painting by contours). The
    // plan is perfect on the base level and 10 % cold on the boost.
    let g = grid([10, 4, 4], 2.0);
    let boost_mask = |[i, _, _]: [usize; 3]| (6..9).contains(&i);
    let prescription = rx(&g, |v| {
        if v[0] == 0 {
            0.0
        } else if boost_mask(v) {
            84.0
        } else {
            70.0
        }
    });
    let dose = Volume::from_fn(
        g.clone(),
        |v| {
            if boost_mask(v) { 84.0 * 0.9 } else { 70.0f32 }
        },
    );
    let levels = prescription_levels(&prescription).unwrap();
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[0].name(), "70 Gy");
    assert_eq!(levels[1].voxel_count(), 3 * 16);
    let analysis = PaintingParams::default().check().unwrap();
    let report = analysis.evaluate(&dose, &prescription, &levels).unwrap();
    let (base, boost) = (&report.levels[0], &report.levels[1]);
    assert_relative_eq!(base.quality_factor, 0.0);
    assert_relative_eq!(boost.quality_factor, 0.1, epsilon = 1e-6);
    assert_relative_eq!(boost.cold_fraction, 1.0);
    assert_relative_eq!(boost.d95_gy, 75.6, epsilon = 1e-4);
    assert_relative_eq!(boost.geud_gy, 75.6, epsilon = 1e-4);
    assert_relative_eq!(boost.largest_cold_cluster_cm3, 48.0 * 0.008, epsilon = 1e-9);
    // Whole target: 48 of 144 prescribed voxels at Q = 0.9.
    assert_eq!(report.target.n_voxels, 9 * 16);
    assert_relative_eq!(
        report.target.quality_factor,
        48.0 * 0.1 / 144.0,
        epsilon = 1e-6
    );
    // A level structure reaching outside the prescription: counted, left out.
    let wide = structure("boost+margin", &g, |[i, _, _]| i < 3);
    let report = analysis.evaluate(&dose, &prescription, &[wide]).unwrap();
    assert_eq!(report.levels[0].unprescribed_voxels, 16);
    assert_eq!(report.levels[0].n_voxels, 32);
    // Serde round trip of the report (floats to within one ulp).
    let back: dosepaint_eval::PaintingReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back.levels.len(), 1);
    assert_relative_eq!(
        back.target.quality_factor,
        report.target.quality_factor,
        max_relative = 1e-15
    );
    assert_relative_eq!(
        back.target.qvh.fraction_at_least(0.95),
        report.target.qvh.fraction_at_least(0.95),
        max_relative = 1e-15
    );
}

#[test]
fn painting_bad_input() {
    let g = grid([4, 4, 4], 2.0);
    let prescription = rx(&g, |[i, _, _]| if i > 0 { 70.0 } else { 0.0 });
    let analysis = PaintingParams::default().check().unwrap();
    // Grid mismatch.
    let other = Volume::filled(grid([4, 4, 3], 2.0), 70.0f32);
    let err = analysis.evaluate(&other, &prescription, &[]).unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }), "{err}");
    // NaN planned dose in a prescribed voxel (but not in an unprescribed one).
    let mut dose = Volume::filled(g.clone(), 70.0f32);
    dose[[0, 1, 1]] = f32::NAN;
    assert!(analysis.evaluate(&dose, &prescription, &[]).is_ok());
    dose[[2, 1, 1]] = f32::NAN;
    let err = analysis.evaluate(&dose, &prescription, &[]).unwrap_err();
    assert!(err.to_string().contains("(2, 1, 1)"), "{err}");
    assert!(q_map(&dose, &prescription).is_err());
    // A level without prescribed voxels.
    let dose = Volume::filled(g.clone(), 70.0f32);
    let outside = structure("outside", &g, |[i, _, _]| i == 0);
    let err = analysis
        .evaluate(&dose, &prescription, &[outside])
        .unwrap_err();
    assert!(matches!(err, Error::Empty { .. }) && err.to_string().contains("outside"));
    // Negative prescriptions cannot be built, nor read from a file.
    let neg = Volume::from_fn(g.clone(), |[i, _, _]| if i == 1 { -5.0f32 } else { 70.0 });
    let err = Prescription::new(neg.clone(), 35, Provenance::default()).unwrap_err();
    assert!(
        err.to_string().contains("[1, 0, 0]") && err.to_string().contains("-5"),
        "{err}"
    );
    let good = rx(&g, |_| 70.0);
    let mut json: serde_json::Value = serde_json::to_value(&good).unwrap();
    json["target_gy"] = serde_json::to_value(&neg).unwrap();
    assert!(serde_json::from_value::<Prescription>(json).is_err());
    // Impossible parameters.
    for p in [
        PaintingParams {
            tolerance: 0.0,
            ..PaintingParams::default()
        },
        PaintingParams {
            tolerance: 1.0,
            ..PaintingParams::default()
        },
        PaintingParams {
            qvh_bin_width: -1.0,
            ..PaintingParams::default()
        },
        PaintingParams {
            dvh_bin_width_gy: f64::NAN,
            ..PaintingParams::default()
        },
        PaintingParams {
            geud_a: f64::INFINITY,
            ..PaintingParams::default()
        },
    ] {
        assert!(p.check().is_err());
    }
    // A continuous DPbN map has no levels.
    let dpbn = rx(&grid([40, 1, 1], 2.0), |[i, _, _]| 70.0 + i as f32 * 0.5);
    assert!(prescription_levels(&dpbn).is_err());
}

// ---------------------------------------------------------------- more invariants and bad input

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Paddick's CI is the product of coverage and selectivity (Paddick 2000:
    /// `CI = (TV_PIV / TV) (TV_PIV / PIV)`), every index lies in [0, 1] except
    /// RTOG = PIV / TV, and the volumes match a direct count of the voxels.
    #[test]
    fn conformity_indices_are_consistent(
        doses in prop::collection::vec(0.0f32..80.0, 125),
        inside in prop::collection::vec(any::<bool>(), 125),
        first in 0usize..125,
        reference in 1.0f64..80.0,
    ) {
        let g = grid([5, 5, 5], 2.0); // 0.008 cm^3 voxels
        let dose = Volume::from_vec(g.clone(), doses.clone()).unwrap();
        // At least one target voxel.
        let mut mask = inside.clone();
        mask[first] = true;
        let target = Structure::new(
            "PTV", StructureRole::Target, Volume::from_vec(g.clone(), mask.clone()).unwrap(),
        ).unwrap();
        let c = conformity(&dose, &target, reference, None).unwrap();
        let covered = |n: usize| f64::from(doses[n]) >= reference;
        let tv = mask.iter().filter(|&&m| m).count() as f64 * 0.008;
        let piv = (0..125).filter(|&n| covered(n)).count() as f64 * 0.008;
        let tv_piv = (0..125).filter(|&n| mask[n] && covered(n)).count() as f64 * 0.008;
        prop_assert!((c.target_volume_cm3 - tv).abs() < 1e-12);
        prop_assert!((c.isodose_volume_cm3 - piv).abs() < 1e-12);
        prop_assert!((c.target_in_isodose_cm3 - tv_piv).abs() < 1e-12);
        prop_assert!((c.paddick - c.coverage * c.selectivity).abs() < 1e-12);
        for x in [c.paddick, c.coverage, c.selectivity] {
            prop_assert!((0.0..=1.0).contains(&x), "{c:?}");
        }
        prop_assert!((c.rtog - piv / tv).abs() < 1e-12);
    }

    /// A sample's mean lies between its minimum and maximum, and the mean and
    /// gEUD(a = 1) agree (Niemierko: gEUD with a = 1 is the mean dose).
    #[test]
    fn sample_mean_is_bounded_and_equals_geud_one(
        doses in prop::collection::vec(0.0f64..90.0, 1..60),
        seed in prop::collection::vec(0.0f64..2.0, 60),
    ) {
        let volumes: Vec<f64> = seed[..doses.len()].iter().map(|v| v + 0.01).collect();
        let s = DoseSample::new("S", doses.clone(), volumes.clone()).unwrap();
        prop_assert!(s.min_gy() <= s.mean_gy() && s.mean_gy() <= s.max_gy());
        let exact = doses.iter().zip(&volumes).map(|(d, v)| d * v).sum::<f64>()
            / volumes.iter().sum::<f64>();
        prop_assert!((s.mean_gy() - exact).abs() <= 1e-12 * exact.max(1.0));
        prop_assert!((s.geud_gy(1.0).unwrap() - exact).abs() <= 1e-12 * exact.max(1.0));
    }
}

#[test]
fn more_bad_input_gives_clear_errors() {
    let g = grid([4, 4, 4], 2.0);
    let dose = Volume::filled(g.clone(), 50.0f32);
    // A uniform sample needs a positive, finite voxel volume and at least one voxel.
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = DoseSample::uniform("x", vec![1.0], v).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
        assert!(err.to_string().contains("voxel volume"), "{err}");
    }
    assert!(matches!(
        DoseSample::uniform("x", vec![], 1.0),
        Err(Error::Empty { .. })
    ));
    let err = DoseSample::new("OAR", vec![1.0, 2.0], vec![1.0, f64::NAN]).unwrap_err();
    assert!(err.to_string().contains("element 1"), "{err}");
    // D_x cc of a negative or NaN volume, V_D of a NaN dose.
    let dvh = Dvh::new(
        &DoseSample::uniform("x", vec![1.0, 2.0], 1.0).unwrap(),
        0.01,
    )
    .unwrap();
    assert!(dvh.dose_at_volume_cm3(-0.1).is_err());
    assert!(dvh.dose_at_volume_cm3(f64::NAN).is_err());
    assert!(dvh.volume_cm3_at_dose(f64::NAN).is_err());
    assert!(dvh.dose_at_volume_percent(-1.0).is_err());
    // Conformity: target or body on another grid.
    let other = grid([4, 4, 5], 2.0);
    let target = structure("PTV", &g, |[i, _, _]| i < 2);
    let err = conformity(&dose, &structure("PTV", &other, |_| true), 50.0, None).unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }) && err.to_string().contains("PTV"));
    let body = structure("Body", &other, |_| true);
    let err = conformity(&dose, &target, 50.0, Some(&body)).unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }) && err.to_string().contains("Body"));
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        assert!(conformity(&dose, &target, bad, None).is_err());
    }
    // Goals: a structure on another grid than the dose.
    let goals: Vec<ClinicalGoal> = vec!["PTV mean > 1 Gy".parse().unwrap()];
    let err =
        evaluate_goals(&goals, &dose, &[structure("PTV", &other, |_| true)], 0.01).unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }), "{err}");
    // Dose painting: the per-voxel Q map on another grid, a level on another grid.
    let prescription = rx(&g, |_| 70.0);
    let err = q_map(&Volume::filled(other.clone(), 70.0f32), &prescription).unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }), "{err}");
    let analysis = PaintingParams::default().check().unwrap();
    let level = structure("boost", &other, |_| true);
    let err = analysis
        .evaluate(&dose, &prescription, &[level])
        .unwrap_err();
    assert!(matches!(err, Error::GridMismatch { .. }) && err.to_string().contains("boost"));
    let report = analysis.evaluate(&dose, &prescription, &[]).unwrap();
    assert!(report.target.qvh.q_at_fraction(-0.1).is_none());
    assert!(report.target.qvh.q_at_fraction(f64::NAN).is_none());
    assert!(report.target.qvh.fraction_at_least(f64::NAN).is_nan());
    // A tampered QVH/DVH histogram: min above max, a negative bin.
    let mut v: serde_json::Value = serde_json::to_value(&dvh).unwrap();
    v["histogram"]["min"] = serde_json::json!(3.0);
    assert!(serde_json::from_value::<Dvh>(v).is_err());
    let mut v: serde_json::Value = serde_json::to_value(&dvh).unwrap();
    v["histogram"]["differential"][0] = serde_json::json!(-1.0);
    assert!(serde_json::from_value::<Dvh>(v).is_err());
}
