//! Every built-in objective's analytic gradient against central finite
//! differences (proptest over random doses), plus closed-form values.

mod common;

use dosepaint_core::{
    BeamGrid, BeamletLayout, DoseInfluence, Grid, Structure, StructureRole, Volume,
};
use dosepaint_optim::{
    Constraint, CurvatureKind, Deviation, DoseLimits, DoseVolume, Error, FluenceObjective,
    FluenceProblem, FluenceSmoothness, GeudLimit, LogTcp, MaxDose, MeanDose, MinDose, Ntcp,
    NtcpModel, Objective, Sense, SquaredDeviation,
};
use dosepaint_radiobio::{Geud, Lkb, LogitNtcp, LqParams, RelativeSeriality};
use proptest::prelude::*;

/// Central differences of `f` at `x` against `grad` (relative tolerance
/// plus the round-off of the difference quotient; step 1e-5 Gy keeps the
/// truncation error ~1e-10 on these smooth pieces).
fn check_gradient(obj: &dyn Objective, dose: &[f64]) -> Result<(), TestCaseError> {
    let weight = 1.7;
    let mut grad = vec![0.0; dose.len()];
    let v = obj.value_and_gradient(dose, weight, &mut grad);
    prop_assert!(
        (v - obj.value(dose)).abs() <= 1e-12 * v.abs().max(1.0),
        "value paths differ"
    );
    let h = 1e-5;
    let mut x = dose.to_vec();
    for i in 0..dose.len() {
        x[i] = dose[i] + h;
        let fp = obj.value(&x);
        x[i] = dose[i] - h;
        let fm = obj.value(&x);
        x[i] = dose[i];
        let fd = weight * (fp - fm) / (2.0 * h);
        // Round-off of the difference quotient is ~eps |f| / h.
        let tol = 1e-5 * fd.abs().max(grad[i].abs()) + 1e-7 + 1e-14 * weight * v.abs() / h;
        prop_assert!(
            (fd - grad[i]).abs() <= tol,
            "{}: row {i}: analytic {} vs finite difference {fd}",
            obj.name(),
            grad[i]
        );
    }
    Ok(())
}

/// [`Objective::add_curvature`] against central differences of the
/// gradient, `(g_i(d + h e_i) - g_i(d - h e_i)) / 2h`, on every row that
/// `smooth_at` says lies inside one quadratic piece (the objectives that
/// report curvature write the exact diagonal of their Hessian there);
/// checks also that the weight scales the curvature.
fn check_curvature(
    obj: &dyn Objective,
    dose: &[f64],
    expected: CurvatureKind,
    smooth_at: impl Fn(usize) -> bool,
) -> Result<(), TestCaseError> {
    let weight = 1.7;
    let mut curvature = vec![0.0; dose.len()];
    prop_assert_eq!(obj.add_curvature(dose, weight, &mut curvature), expected);
    let h = 1e-4;
    let mut x = dose.to_vec();
    let mut gp = vec![0.0; dose.len()];
    let mut gm = vec![0.0; dose.len()];
    for i in (0..dose.len()).filter(|&i| smooth_at(i)) {
        gp.fill(0.0);
        gm.fill(0.0);
        x[i] = dose[i] + h;
        obj.value_and_gradient(&x, weight, &mut gp);
        x[i] = dose[i] - h;
        obj.value_and_gradient(&x, weight, &mut gm);
        x[i] = dose[i];
        let fd = (gp[i] - gm[i]) / (2.0 * h);
        // Truncation error ~h^2 f''' (zero on quadratic pieces; the soft
        // extremes have |f'''| of order 1/tau^2 at tau >= 0.3 Gy).
        let tol = 1e-5 * fd.abs().max(curvature[i].abs()) + 1e-6;
        prop_assert!(
            (fd - curvature[i]).abs() <= tol,
            "{}: row {i}: curvature {} vs finite difference {fd}",
            obj.name(),
            curvature[i]
        );
    }
    Ok(())
}

fn rows_of(n: usize, mask: &[bool]) -> Vec<u32> {
    (0..n as u32)
        .filter(|&r| mask[r as usize % mask.len()])
        .collect()
}

prop_compose! {
    fn doses_and_rows()(n in 4usize..40)(
        dose in prop::collection::vec(0.5f64..80.0, n),
        mask in prop::collection::vec(any::<bool>(), n),
    ) -> (Vec<f64>, Vec<u32>) {
        let mut rows = rows_of(dose.len(), &mask);
        if rows.is_empty() { rows.push(0); }
        (dose, rows)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn squared_deviation_gradient((dose, rows) in doses_and_rows(), p in 20.0f64..80.0, relative in any::<bool>()) {
        let presc: Vec<f64> = rows.iter().map(|&r| p + r as f64).collect();
        let mode = if relative { Deviation::Relative } else { Deviation::Absolute };
        let o = SquaredDeviation::from_rows("sd", rows, presc, mode).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn dose_limits_gradient((dose, rows) in doses_and_rows(), u in 10.0f64..50.0, gap in 0.0f64..30.0, cold in 0.0f64..5.0) {
        let n = rows.len();
        let under: Vec<f64> = (0..n).map(|k| u + k as f64 * 0.3).collect();
        let over: Vec<f64> = under.iter().map(|x| x + gap).collect();
        let o = DoseLimits::from_rows("lim", rows, Some(under), Some(over)).unwrap()
            .with_side_weights(cold, 1.0).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn max_and_min_dose_gradient((dose, rows) in doses_and_rows(), limit in 0.0f64..80.0, tau in 0.3f64..5.0) {
        let o = MaxDose::from_rows("max", rows.clone(), limit).unwrap().with_softness(tau).unwrap();
        check_gradient(&o, &dose)?;
        let o = MinDose::from_rows("min", rows, limit).unwrap().with_softness(tau).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn mean_dose_gradient((dose, rows) in doses_and_rows(), limit in 0.0f64..80.0, at_most in any::<bool>()) {
        let sense = if at_most { Sense::AtMost } else { Sense::AtLeast };
        let o = MeanDose::from_rows("mean", rows, sense, limit).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn dose_volume_gradient((dose, rows) in doses_and_rows(), d in 10.0f64..70.0, v in 0.0f64..1.0, at_most in any::<bool>()) {
        let sense = if at_most { Sense::AtMost } else { Sense::AtLeast };
        let o = DoseVolume::from_rows("dvh", rows, sense, d, v).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn geud_gradient((dose, rows) in doses_and_rows(), limit in 0.0f64..80.0, a_index in 0usize..4) {
        let (a, sense) = [(-10.0, Sense::AtLeast), (-2.0, Sense::AtLeast), (1.0, Sense::AtMost), (8.0, Sense::AtMost)][a_index];
        let o = GeudLimit::from_rows("geud", rows, Geud::new(a).unwrap(), sense, limit).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn log_tcp_gradient((dose, rows) in doses_and_rows(), alpha in 0.1f64..0.4, rho in 1e5f64..1e8) {
        let n = rows.len();
        let alphas: Vec<f64> = (0..n).map(|k| alpha * (1.0 + 0.05 * k as f64)).collect();
        let o = LogTcp::from_rows("tcp", rows, 35, 0.125, vec![rho; n], alphas, vec![0.03; n]).unwrap();
        check_gradient(&o, &dose)?;
    }

    #[test]
    fn ntcp_gradient((dose, rows) in doses_and_rows(), which in 0usize..3) {
        let model = match which {
            0 => NtcpModel::Lkb(Lkb::new(39.9, 0.4, 1.0).unwrap()),
            1 => NtcpModel::Logit(LogitNtcp::new(46.0, 2.0, 4.0).unwrap()),
            _ => NtcpModel::RelativeSeriality(RelativeSeriality::new(45.0, 1.8, 0.2).unwrap()),
        };
        let o = Ntcp::from_rows("ntcp", rows, model);
        check_gradient(&o, &dose)?;
    }

    /// The exact solver's quadratic model and the preconditioners rest on
    /// the curvature: the exact Hessian diagonal of every objective that
    /// reports one (away from the kinks of the piecewise ones).
    #[test]
    fn curvature_is_the_hessian_diagonal(
        (dose, rows) in doses_and_rows(),
        p in 20.0f64..80.0,
        gap in 0.0f64..30.0,
        limit in 0.0f64..80.0,
        tau in 0.3f64..5.0,
        relative in any::<bool>(),
    ) {
        let n = rows.len();
        let off_kinks = |thresholds: &[f64]| {
            let mut ok = vec![true; dose.len()];
            for (&r, &t) in rows.iter().zip(thresholds) {
                ok[r as usize] = (dose[r as usize] - t).abs() > 1e-2;
            }
            ok
        };
        let presc: Vec<f64> = rows.iter().map(|&r| p + r as f64).collect();
        let mode = if relative { Deviation::Relative } else { Deviation::Absolute };
        let o = SquaredDeviation::from_rows("sd", rows.clone(), presc.clone(), mode).unwrap();
        check_curvature(&o, &dose, CurvatureKind::PiecewiseQuadratic, |_| true)?;
        // Closed form on its rows: 2 w / (N p_i^2) relative, 2 w / N absolute.
        let mut c = vec![0.0; dose.len()];
        o.add_curvature(&dose, 1.0, &mut c);
        for (&r, &pr) in rows.iter().zip(&presc) {
            let expected = 2.0 / n as f64 / if relative { pr * pr } else { 1.0 };
            prop_assert!((c[r as usize] - expected).abs() <= 1e-15 * expected);
        }
        let under = presc.clone();
        let over: Vec<f64> = under.iter().map(|u| u + gap).collect();
        let o = DoseLimits::from_rows("lim", rows.clone(), Some(under.clone()), Some(over.clone()))
            .unwrap().with_side_weights(3.0, 0.5).unwrap();
        let (ok_u, ok_o) = (off_kinks(&under), off_kinks(&over));
        check_curvature(&o, &dose, CurvatureKind::PiecewiseQuadratic, |i| ok_u[i] && ok_o[i])?;
        for (sign, o) in [
            (1.0, Box::new(MaxDose::from_rows("max", rows.clone(), limit).unwrap().with_softness(tau).unwrap()) as Box<dyn Objective>),
            (-1.0, Box::new(MinDose::from_rows("min", rows.clone(), limit).unwrap().with_softness(tau).unwrap())),
        ] {
            // Off the kink where the smooth extreme crosses the limit.
            let m = if sign > 0.0 {
                MaxDose::from_rows("m", rows.clone(), limit).unwrap().with_softness(tau).unwrap().smooth_extreme_gy(&dose)
            } else {
                MinDose::from_rows("m", rows.clone(), limit).unwrap().with_softness(tau).unwrap().smooth_extreme_gy(&dose)
            };
            let away = (m - limit).abs() > 1e-2;
            check_curvature(o.as_ref(), &dose, CurvatureKind::Approximate, |_| away)?;
        }
        for sense in [Sense::AtMost, Sense::AtLeast] {
            let o = MeanDose::from_rows("mean", rows.clone(), sense, limit).unwrap();
            let away = (o.mean_gy(&dose) - limit).abs() > 1e-2;
            check_curvature(&o, &dose, CurvatureKind::Approximate, |_| away)?;
        }
    }

    #[test]
    fn smoothness_gradient(w in prop::collection::vec(0.0f64..5.0, 6)) {
        let layout = BeamletLayout::full(vec![BeamGrid { n_rows: 2, n_cols: 3, x0_mm: 0.0, y0_mm: 0.0 }], 5.0, 5.0).unwrap();
        let s = FluenceSmoothness::new(&layout).unwrap();
        let mut g = vec![0.0; 6];
        s.value_and_gradient(&w, 1.0, &mut g);
        let mut x = w.clone();
        let mut scratch = vec![0.0; 6];
        for i in 0..6 {
            x[i] = w[i] + 1e-6;
            let fp = s.value_and_gradient(&x, 0.0, &mut scratch);
            x[i] = w[i] - 1e-6;
            let fm = s.value_and_gradient(&x, 0.0, &mut scratch);
            x[i] = w[i];
            prop_assert!(((fp - fm) / 2e-6 - g[i]).abs() < 1e-6);
        }
    }

    /// The whole problem (D^T of the row gradients, fluence terms and the
    /// augmented-Lagrangian terms of constraints) against finite differences
    /// in the beamlet weights.
    #[test]
    fn problem_gradient(entries in prop::collection::vec(0.0f32..1.0, 24), w in prop::collection::vec(0.1f64..40.0, 4)) {
        let (d, ptv, oar) = small_plan(&entries);
        let mut p = FluenceProblem::new(&d).unwrap();
        p.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap()).unwrap();
        p.add_objective(0.5, DoseLimits::overdose(&d, &oar, 10.0).unwrap()).unwrap();
        p.add_fluence_objective(0.1, FluenceSmoothness::new(d.layout()).unwrap()).unwrap();
        p.add_constraint(Constraint::max_dose(&d, &oar, 20.0).unwrap()).unwrap();
        p.add_constraint(Constraint::mean_dose(&d, &ptv, Sense::AtLeast, 55.0).unwrap()).unwrap();
        p.add_constraint(Constraint::dose_at_volume(&d, &ptv, 0.5, Sense::AtLeast, 58.0).unwrap()).unwrap();
        p.add_constraint(Constraint::dose_at_volume(&d, &oar, 0.5, Sense::AtMost, 5.0).unwrap()).unwrap();
        let ntcp = Ntcp::new(&d, &oar, NtcpModel::Lkb(Lkb::new(39.9, 0.4, 1.0).unwrap())).unwrap();
        p.add_constraint(Constraint::measure("OAR NTCP", Box::new(ntcp), Sense::AtMost, 0.05).unwrap()).unwrap();
        let mut g = vec![0.0; 4];
        p.value_and_gradient(&w, &mut g).unwrap();
        let mut x = w.clone();
        let mut scratch = vec![0.0; 4];
        for j in 0..4 {
            let h = 1e-6 * w[j].max(1.0);
            x[j] = w[j] + h;
            let fp = p.value_and_gradient(&x, &mut scratch).unwrap();
            x[j] = w[j] - h;
            let fm = p.value_and_gradient(&x, &mut scratch).unwrap();
            x[j] = w[j];
            let fd = (fp - fm) / (2.0 * h);
            prop_assert!((fd - g[j]).abs() <= 1e-5 * fd.abs().max(g[j].abs()) + 1e-6, "beamlet {j}: {} vs {fd}", g[j]);
        }
    }
}

/// Six voxels in a row (0-3 target, 4-5 organ), four beamlets, entries from
/// `e` (24 = 6 x 4).
pub fn small_plan(e: &[f32]) -> (DoseInfluence, Structure, Structure) {
    let triplets =
        (0..6u32).flat_map(|r| (0..4u32).map(move |c| (r, c, e[(r * 4 + c) as usize] + 0.05)));
    let d = common::line_influence(6, [2, 2], triplets);
    let (ptv, oar) = common::target_and_organ(&d, 4);
    (d, ptv, oar)
}

#[test]
fn closed_form_values() {
    let dose = [40.0, 50.0, 60.0, 70.0];
    let rows = vec![0, 1, 2, 3];
    // Relative deviation from 50 Gy: ((-0.2)^2 + 0 + 0.2^2 + 0.4^2) / 4 = 0.06.
    let o =
        SquaredDeviation::from_rows("r", rows.clone(), vec![50.0; 4], Deviation::Relative).unwrap();
    assert!((o.value(&dose) - 0.06).abs() < 1e-12);
    // Cold side weighted 4: under 55 -> (15^2 + 5^2) * 4, over 65 -> 5^2; / 4.
    let o = DoseLimits::from_rows("l", rows.clone(), Some(vec![55.0; 4]), Some(vec![65.0; 4]))
        .unwrap()
        .with_side_weights(4.0, 1.0)
        .unwrap();
    assert!((o.value(&dose) - (4.0 * 250.0 + 25.0) / 4.0).abs() < 1e-12);
    // Soft max: 70 <= M <= 70 + tau ln 4.
    let o = MaxDose::from_rows("m", rows.clone(), 0.0)
        .unwrap()
        .with_softness(0.5)
        .unwrap();
    let m = o.smooth_extreme_gy(&dose);
    assert!((70.0..=70.0 + 0.5 * 4f64.ln()).contains(&m));
    // Mean 55 vs at most 50: 25.
    let o = MeanDose::from_rows("mean", rows.clone(), Sense::AtMost, 50.0).unwrap();
    assert!((o.value(&dose) - 25.0).abs() < 1e-12);
    // V45 <= 50 %: three voxels exceed 45, two allowed; the third hottest
    // (50 Gy) is penalized: (50 - 45)^2 / 4.
    let o = DoseVolume::from_rows("v", rows.clone(), Sense::AtMost, 45.0, 0.5).unwrap();
    assert!((o.value(&dose) - 6.25).abs() < 1e-12);
    // V55 >= 75 %: one voxel may be cold; 40 is allowed, 50 penalized: 25 / 4.
    let o = DoseVolume::from_rows("v", rows, Sense::AtLeast, 55.0, 0.75).unwrap();
    assert!((o.value(&dose) - 6.25).abs() < 1e-12);
}

/// Published values through the objectives (shared/reference/radiobiology.csv):
/// LKB parotid (QUANTEC, Deasy et al. 2010) at a uniform 26 Gy: NTCP 0.192;
/// gEUD (a = -10) of 60 and 70 Gy half volumes: 63.07 Gy.
#[test]
fn biological_reference_values() {
    let o = Ntcp::from_rows(
        "parotid",
        vec![0, 1, 2],
        NtcpModel::Lkb(Lkb::new(39.9, 0.40, 1.0).unwrap()),
    );
    assert!((o.value(&[26.0; 3]) - 0.192).abs() < 0.002);
    let g = GeudLimit::from_rows(
        "ptv",
        vec![0, 1],
        Geud::new(-10.0).unwrap(),
        Sense::AtLeast,
        65.0,
    )
    .unwrap();
    assert!((g.geud_gy(&[60.0, 70.0]) - 63.07).abs() < 0.01);
    assert!((g.value(&[60.0, 70.0]) - (65.0 - 63.07f64).powi(2)).abs() < 0.05);
    // Poisson TCP, closed form: -ln TCP = N exp(-(alpha D + beta D^2 / n)).
    let lq = LqParams::new(0.3, 0.03).unwrap();
    let t = two_voxel_tcp([0, 1], [1e7; 2], lq.alpha_per_gy(), lq.beta_per_gy2()).unwrap();
    let expected = 2.0 * 1e6 * (-(0.3 * 70.0 + 0.03 * 70.0 * 70.0 / 35.0f64)).exp();
    assert!((t.value(&[70.0, 70.0]) - expected).abs() < 1e-9 * expected);
    // A bad model input is an error at construction, naming the voxel.
    assert!(two_voxel_tcp([0, 1], [1e7, -1.0], 0.3, 0.03).is_err());
}

/// `-ln TCP` of two 0.1 cm^3 voxels (`rows`) treated in 35 fractions, with
/// their clonogen densities (per cm^3) and uniform LQ parameters.
fn two_voxel_tcp(
    rows: [u32; 2],
    clonogens_per_cm3: [f64; 2],
    alpha_per_gy: f64,
    beta_per_gy2: f64,
) -> dosepaint_optim::Result<LogTcp> {
    LogTcp::from_rows(
        "tcp",
        rows.to_vec(),
        35,
        0.1,
        clonogens_per_cm3.to_vec(),
        vec![alpha_per_gy; 2],
        vec![beta_per_gy2; 2],
    )
}

#[test]
fn bad_inputs_are_named_errors() {
    let (d, ptv, _) = small_plan(&[0.5; 24]);
    let grid = d.grid().clone();
    // NaN and negative thresholds in a map.
    let nan_map = Volume::from_fn(
        grid.clone(),
        |[i, _, _]| if i == 2 { f32::NAN } else { 50.0 },
    );
    let e = DoseLimits::from_maps(&d, &ptv, Some(&nan_map), None).unwrap_err();
    assert!(e.to_string().contains("[2, 0, 0]"), "{e}");
    let neg_map = Volume::from_fn(grid.clone(), |[i, _, _]| if i == 1 { -5.0 } else { 50.0 });
    assert!(DoseLimits::from_maps(&d, &ptv, None, Some(&neg_map)).is_err());
    // Under above over.
    let e = DoseLimits::uniform(&d, &ptv, Some(60.0), Some(50.0)).unwrap_err();
    assert!(matches!(e, dosepaint_optim::Error::Contradictory(_)), "{e}");
    // Empty structure.
    let empty = Structure::new(
        "Empty",
        StructureRole::OrganAtRisk,
        Volume::filled(grid.clone(), false),
    )
    .unwrap();
    let e = SquaredDeviation::uniform(&d, &empty, 50.0).unwrap_err();
    assert!(e.to_string().contains("Empty"), "{e}");
    // Structure on another grid.
    let other = Grid::new([6, 1, 1], [3.0; 3], [0.0; 3]).unwrap();
    let s = Structure::new("S", StructureRole::Target, Volume::filled(other, true)).unwrap();
    assert!(SquaredDeviation::uniform(&d, &s, 50.0).is_err());
    // Invalid parameters.
    assert!(SquaredDeviation::uniform(&d, &ptv, f64::NAN).is_err());
    assert!(DoseVolume::new(&d, &ptv, Sense::AtMost, 20.0, 1.5).is_err());
    assert!(
        MaxDose::new(&d, &ptv, 50.0)
            .unwrap()
            .with_softness(0.0)
            .is_err()
    );
    // Relative deviation with an unprescribed voxel.
    let rx_map = Volume::from_fn(grid, |[i, _, _]| if i == 3 { 0.0 } else { 60.0 });
    let rx = dosepaint_core::Prescription::new(rx_map, 30, dosepaint_core::Provenance::default())
        .unwrap();
    let e = SquaredDeviation::to_prescription(&d, &ptv, &rx, Deviation::Relative).unwrap_err();
    assert!(e.to_string().contains("[3, 0, 0]"), "{e}");
}

/// Objectives and settings round-trip through JSON; invalid data is refused
/// on reading.
#[test]
fn serde_round_trips() {
    let o = DoseLimits::from_rows(
        "lim",
        vec![0, 3],
        Some(vec![50.0, 52.0]),
        Some(vec![55.0, 57.0]),
    )
    .unwrap();
    let back: DoseLimits = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
    let t = two_voxel_tcp([1, 2], [1e7; 2], 0.3, 0.03).unwrap();
    let json = serde_json::to_string(&t).unwrap();
    let back: LogTcp = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    let bad = json.replace("0.3", "-0.3");
    assert!(serde_json::from_str::<LogTcp>(&bad).is_err());
    let s = dosepaint_optim::Settings::default();
    let back: dosepaint_optim::Settings =
        serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

/// Closed forms of the smooth extremes, the mean and the DVH penalties.
#[test]
fn closed_form_extremes_means_and_dvh() {
    let rows = vec![0, 1, 2, 3];
    // Log-sum-exp of N equal doses d: tau ln(N exp(d / tau)) = d + tau ln N,
    // and every softmax weight is 1 / N.
    let equal = [50.0; 4];
    let tau = 0.5;
    let e = 50.0 + tau * 4f64.ln() - 48.0;
    let o = MaxDose::from_rows("max", rows.clone(), 48.0)
        .unwrap()
        .with_softness(tau)
        .unwrap();
    assert!((o.smooth_extreme_gy(&equal) - (50.0 + tau * 4f64.ln())).abs() < 1e-12);
    let mut g = vec![0.0; 4];
    assert!((o.value_and_gradient(&equal, 1.0, &mut g) - e * e).abs() < 1e-12);
    for gi in &g {
        assert!((gi - 2.0 * e / 4.0).abs() < 1e-12, "{g:?}");
    }
    // The smooth minimum mirrors it: d - tau ln N, pushed up by the limit.
    let o = MinDose::from_rows("min", rows.clone(), 52.0)
        .unwrap()
        .with_softness(tau)
        .unwrap();
    assert!((o.smooth_extreme_gy(&equal) - (50.0 - tau * 4f64.ln())).abs() < 1e-12);
    let e = 52.0 - (50.0 - tau * 4f64.ln());
    let mut g = vec![0.0; 4];
    assert!((o.value_and_gradient(&equal, 1.0, &mut g) - e * e).abs() < 1e-12);
    for gi in &g {
        assert!((gi + 2.0 * e / 4.0).abs() < 1e-12, "{g:?}");
    }
    // Smooth minimum of spread doses: m <= min, within tau ln N of it.
    let dose = [40.0, 50.0, 60.0, 70.0];
    let m = o.smooth_extreme_gy(&dose);
    assert!((40.0 - tau * 4f64.ln()..=40.0).contains(&m), "{m}");
    // Mean 55 Gy: at least 60 -> 25 Gy^2, at most 60 -> met.
    let o = MeanDose::from_rows("mean", rows.clone(), Sense::AtLeast, 60.0).unwrap();
    assert!((o.value(&dose) - 25.0).abs() < 1e-12);
    let o = MeanDose::from_rows("mean", rows.clone(), Sense::AtMost, 60.0).unwrap();
    assert!(o.value(&dose).abs() < 1e-15);
    // V45 <= 0 %: every voxel above 45 Gy is penalized: (5^2 + 15^2 + 25^2) / 4.
    let o = DoseVolume::from_rows("v", rows.clone(), Sense::AtMost, 45.0, 0.0).unwrap();
    assert!((o.value(&dose) - 218.75).abs() < 1e-12);
    // V45 <= 75 % holds (three voxels of four above 45 Gy): zero.
    let o = DoseVolume::from_rows("v", rows.clone(), Sense::AtMost, 45.0, 0.75).unwrap();
    assert!(o.value(&dose).abs() < 1e-15);
    // V65 >= 100 %: every voxel below 65 Gy is penalized: (25^2 + 15^2 + 5^2) / 4.
    let o = DoseVolume::from_rows("v", rows, Sense::AtLeast, 65.0, 1.0).unwrap();
    assert!((o.value(&dose) - 218.75).abs() < 1e-12);
}

/// Every refused parameter of the objectives is an `Err` of the right kind
/// that names what was wrong.
#[test]
fn bad_objective_parameters_are_named_errors() {
    let rows = vec![0, 1, 2, 3];
    let invalid = |r: dosepaint_optim::Result<_>, needle: &str| match r {
        Err(Error::InvalidParameter { what, reason }) => {
            let text = format!("{what}: {reason}");
            assert!(text.contains(needle), "{text} should name {needle}");
        }
        other => panic!("expected InvalidParameter naming {needle}, got {other:?}"),
    };
    // Dose limits: no side, wrong length, NaN threshold, negative side weight.
    invalid(
        DoseLimits::from_rows("lim", rows.clone(), None, None).map(|_| ()),
        "lim",
    );
    assert!(matches!(
        DoseLimits::from_rows("lim", rows.clone(), Some(vec![1.0; 3]), None),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 3,
            ..
        })
    ));
    invalid(
        DoseLimits::from_rows(
            "lim",
            rows.clone(),
            None,
            Some(vec![1.0, f64::NAN, 1.0, 1.0]),
        )
        .map(|_| ()),
        "row 1",
    );
    invalid(
        DoseLimits::from_rows("lim", rows.clone(), Some(vec![1.0; 4]), None)
            .unwrap()
            .with_side_weights(-1.0, 1.0)
            .map(|_| ()),
        "cold-side weight",
    );
    // Squared deviation: wrong length, a zero prescription for a relative one.
    assert!(matches!(
        SquaredDeviation::from_rows("sd", rows.clone(), vec![60.0; 5], Deviation::Absolute),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 5,
            ..
        })
    ));
    invalid(
        SquaredDeviation::from_rows(
            "sd",
            rows.clone(),
            vec![60.0, 60.0, 0.0, 60.0],
            Deviation::Relative,
        )
        .map(|_| ()),
        "row 2",
    );
    // Limits of the other physical objectives.
    invalid(
        MeanDose::from_rows("mean", rows.clone(), Sense::AtMost, -1.0).map(|_| ()),
        "mean-dose limit",
    );
    invalid(
        MinDose::from_rows("min", rows.clone(), f64::NAN).map(|_| ()),
        "dose limit",
    );
    invalid(
        MaxDose::from_rows("max", rows.clone(), f64::INFINITY).map(|_| ()),
        "dose limit",
    );
    invalid(
        DoseVolume::from_rows("v", rows.clone(), Sense::AtMost, f64::NAN, 0.5).map(|_| ()),
        "DVH dose",
    );
    for v in [-0.1, f64::NAN] {
        invalid(
            DoseVolume::from_rows("v", rows.clone(), Sense::AtMost, 20.0, v).map(|_| ()),
            "volume fraction",
        );
    }
    // Biological: negative gEUD limit, a NaN exponent (radiobio refuses it),
    // maps of the wrong length.
    invalid(
        GeudLimit::from_rows(
            "g",
            rows.clone(),
            Geud::new(4.0).unwrap(),
            Sense::AtMost,
            -5.0,
        )
        .map(|_| ()),
        "gEUD limit",
    );
    let (d, ptv, oar) = small_plan(&[0.5; 24]);
    assert!(matches!(
        GeudLimit::new(&d, &oar, f64::NAN, Sense::AtMost, 20.0),
        Err(Error::Radiobio(_))
    ));
    assert!(matches!(
        LogTcp::from_rows(
            "tcp",
            rows.clone(),
            30,
            0.1,
            vec![1e7; 4],
            vec![0.3; 3],
            vec![0.03; 4]
        ),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 3,
            ..
        })
    ));
    // Fractions of the prescription: negative, or the window upside down.
    let rx = dosepaint_core::Prescription::new(
        Volume::filled(d.grid().clone(), 60.0),
        30,
        dosepaint_core::Provenance::default(),
    )
    .unwrap();
    invalid(
        DoseLimits::around_prescription(&d, &ptv, &rx, Some(-0.1), None).map(|_| ()),
        "underdose fraction",
    );
    assert!(matches!(
        DoseLimits::around_prescription(&d, &ptv, &rx, Some(1.05), Some(0.95)),
        Err(Error::Contradictory(_))
    ));
    // A prescription without minimum and maximum maps has no bounds to use.
    invalid(
        DoseLimits::prescription_bounds(&d, &ptv, &rx).map(|_| ()),
        "minimum/maximum",
    );
    // Smoothness: a single beamlet has no neighbour; a layout of another plan.
    let one = BeamletLayout::full(
        vec![BeamGrid {
            n_rows: 1,
            n_cols: 1,
            x0_mm: 0.0,
            y0_mm: 0.0,
        }],
        5.0,
        5.0,
    )
    .unwrap();
    assert!(matches!(
        FluenceSmoothness::new(&one),
        Err(Error::Empty { .. })
    ));
    let six = BeamletLayout::full(
        vec![BeamGrid {
            n_rows: 2,
            n_cols: 3,
            x0_mm: 0.0,
            y0_mm: 0.0,
        }],
        5.0,
        5.0,
    )
    .unwrap();
    let mut p = FluenceProblem::new(&d).unwrap();
    assert!(matches!(
        p.add_fluence_objective(1.0, FluenceSmoothness::new(&six).unwrap()),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 6,
            ..
        })
    ));
    // Rows out of order are refused when the objective is added.
    let o = SquaredDeviation::from_rows("sd", vec![0, 2, 1], vec![60.0; 3], Deviation::Absolute)
        .unwrap();
    invalid(p.add_objective(1.0, o).map(|_| ()), "ascending");
    // An NTCP over no row.
    let o = Ntcp::from_rows(
        "none",
        Vec::new(),
        NtcpModel::Lkb(Lkb::new(39.9, 0.4, 1.0).unwrap()),
    );
    assert!(matches!(p.add_objective(1.0, o), Err(Error::Empty { .. })));
}
