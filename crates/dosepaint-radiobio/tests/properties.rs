//! Property tests: monotonicity, bounds, round trips, and every analytic gradient
//! against a central finite difference.

use dosepaint_radiobio::{
    AlphaBeta, Fractionation, Gard, Geud, Lkb, LogitNtcp, LqParams, OerModel, PoissonTcp,
    PopulationQuadrature, PopulationTcp, RelativeSeriality, Repopulation, TcpVoxelData,
    VoxelValues, Weights, bed, bed_map, dose_for_log_cell_kill, effective_bed, eqd2,
    eqd2_map_with_derivative, isoeffective_total_dose, isoeffective_total_dose_with_time,
    ln_survival, survival_fraction,
};
use proptest::prelude::*;

/// Doses (Gy) and relative volumes of the same length.
fn doses_and_weights(max_len: usize) -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1..=max_len).prop_flat_map(|n| {
        (
            prop::collection::vec(5.0f64..90.0, n),
            prop::collection::vec(0.05f64..3.0, n),
        )
    })
}

/// Central finite difference of `f` at `x` in every coordinate, compared with `grad`.
fn check_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64], grad: &[f64], what: &str) {
    let f0 = f(x);
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        let h = 1e-5 * x[i].abs().max(1.0);
        xp[i] = x[i] + h;
        let fp = f(&xp);
        xp[i] = x[i] - h;
        let fm = f(&xp);
        xp[i] = x[i];
        let fd = (fp - fm) / (2.0 * h);
        // Truncation O(h^2) relative to the derivative, round-off ~ eps |f| / h.
        let tol = 1e-5 * grad[i].abs().max(fd.abs()) + 1e-10 * (f0.abs() + 1e-300) / h;
        assert!(
            (fd - grad[i]).abs() <= tol,
            "{what}: d/dD[{i}] analytic {} vs finite difference {fd} (f = {f0}, tol {tol})",
            grad[i]
        );
    }
}

/// The properties every NTCP model shares: the value is in [0, 1], every partial
/// derivative is >= 0, NTCP does not fall when every dose is scaled up by `scale`,
/// and the analytic gradient matches central finite differences.
fn check_ntcp_model(
    ntcp: impl Fn(&[f64]) -> f64,
    ntcp_and_gradient: impl Fn(&[f64], &mut [f64]) -> f64,
    doses: &[f64],
    scale: f64,
    what: &str,
) -> Result<(), TestCaseError> {
    let mut g = vec![0.0; doses.len()];
    let p = ntcp_and_gradient(doses, &mut g);
    prop_assert!((0.0..=1.0).contains(&p), "{what}: NTCP {p} outside [0, 1]");
    prop_assert!(
        g.iter().all(|x| *x >= 0.0),
        "{what}: negative partial derivative in {g:?}"
    );
    let hotter: Vec<f64> = doses.iter().map(|x| x * scale).collect();
    prop_assert!(ntcp(&hotter) >= p, "{what}: NTCP fell when the dose rose");
    check_gradient(ntcp, doses, &g, what);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn survival_decreases_with_dose(
        alpha in 0.05f64..0.8, ab in 0.5f64..20.0, n in 1u32..40, d1 in 0.0f64..80.0, dd in 0.01f64..40.0
    ) {
        let lq = LqParams::from_alpha_and_ratio(alpha, AlphaBeta::new(ab).unwrap()).unwrap();
        let s1 = survival_fraction(&lq, d1, n).unwrap();
        let s2 = survival_fraction(&lq, d1 + dd, n).unwrap();
        prop_assert!(s2 < s1 || (s1 == 0.0 && s2 == 0.0));
        prop_assert!((0.0..=1.0).contains(&s1));
    }

    #[test]
    fn eqd2_of_2gy_fractions_is_the_physical_dose(n in 1u32..60, ab in 0.3f64..30.0) {
        let d = 2.0 * f64::from(n);
        let e = eqd2(d, n, ab).unwrap();
        prop_assert!((e - d).abs() <= 1e-12 * d);
    }

    #[test]
    fn bed_isoeffective_round_trip(
        total in 0.0f64..120.0, n in 1u32..50, m in 1u32..50, ab in 0.3f64..30.0
    ) {
        let abv = AlphaBeta::new(ab).unwrap();
        let b = bed(total, n, ab).unwrap();
        let d_m = isoeffective_total_dose(b, m, abv).unwrap();
        let back = bed(d_m, m, ab).unwrap();
        prop_assert!((back - b).abs() <= 1e-10 * b.max(1.0), "{b} -> {d_m} -> {back}");
        let fx = Fractionation::new(total, n).unwrap().isoeffective_in(abv, m).unwrap();
        prop_assert!((fx.total_dose_gy() - d_m).abs() <= 1e-12 * d_m.max(1.0));
    }

    #[test]
    fn geud_lies_between_min_and_max((d, w) in doses_and_weights(30), a in -40.0f64..40.0) {
        let g = Geud::new(a).unwrap().value(&d, &w).unwrap();
        let lo = d.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = d.iter().copied().fold(0.0, f64::max);
        prop_assert!(g >= lo * (1.0 - 1e-12) && g <= hi * (1.0 + 1e-12), "{lo} <= {g} <= {hi}");
        // a = 1: the weighted mean.
        let mean = d.iter().zip(&w).map(|(x, v)| x * v).sum::<f64>() / w.iter().sum::<f64>();
        let g1 = Geud::new(1.0).unwrap().value(&d, &w).unwrap();
        prop_assert!((g1 - mean).abs() <= 1e-12 * mean);
        // Uniform weights equal explicit unit weights.
        let u = Geud::new(a).unwrap().value(&d, Weights::Uniform).unwrap();
        let ones = vec![1.0; d.len()];
        let e = Geud::new(a).unwrap().value(&d, &ones).unwrap();
        prop_assert!((u - e).abs() <= 1e-13 * e);
    }

    #[test]
    fn geud_is_monotone_in_a((d, w) in doses_and_weights(20), a in -30.0f64..30.0, da in 0.01f64..5.0) {
        let g1 = Geud::new(a).unwrap().value(&d, &w).unwrap();
        let g2 = Geud::new(a + da).unwrap().value(&d, &w).unwrap();
        prop_assert!(g2 >= g1 * (1.0 - 1e-12));
    }

    #[test]
    fn geud_gradient_matches_finite_differences((d, w) in doses_and_weights(12), a in -20.0f64..20.0) {
        let geud = Geud::new(a).unwrap();
        let mut g = vec![0.0; d.len()];
        geud.value_and_gradient(&d, &w, &mut g).unwrap();
        check_gradient(|x| geud.value(x, &w).unwrap(), &d, &g, "gEUD");
        // Euler: gEUD is homogeneous of degree 1, so sum_i D_i dG/dD_i = G.
        let euler: f64 = d.iter().zip(&g).map(|(x, gi)| x * gi).sum();
        let v = geud.value(&d, &w).unwrap();
        prop_assert!((euler - v).abs() <= 1e-10 * v);
    }

    #[test]
    fn geud_whole_number_exponents((d, w) in doses_and_weights(16), a in -30i32..30) {
        // Whole-number exponents take the repeated-squaring path: compare with the
        // textbook formula and with finite differences.
        let a = f64::from(a);
        let geud = Geud::new(a).unwrap();
        let mut g = vec![0.0; d.len()];
        let v = geud.value_and_gradient(&d, &w, &mut g).unwrap();
        let wsum: f64 = w.iter().sum();
        let textbook = if a == 0.0 {
            (d.iter().zip(&w).map(|(x, wi)| wi * x.ln()).sum::<f64>() / wsum).exp()
        } else {
            (d.iter().zip(&w).map(|(x, wi)| wi * x.powf(a)).sum::<f64>() / wsum).powf(1.0 / a)
        };
        prop_assert!((v - textbook).abs() <= 1e-12 * textbook, "{v} vs {textbook}");
        check_gradient(|x| geud.value(x, &w).unwrap(), &d, &g, "gEUD whole a");
    }

    #[test]
    fn geud_gradient_near_zero_exponent((d, w) in doses_and_weights(8), a in -0.06f64..0.06) {
        let geud = Geud::new(a).unwrap();
        let mut g = vec![0.0; d.len()];
        geud.value_and_gradient(&d, &w, &mut g).unwrap();
        check_gradient(|x| geud.value(x, &w).unwrap(), &d, &g, "gEUD small a");
    }

    #[test]
    fn lkb_increases_with_dose_and_gradient_matches(
        (d, w) in doses_and_weights(12), td50 in 20.0f64..80.0, m in 0.08f64..0.6, n in 0.03f64..1.5,
        scale in 1.001f64..1.5
    ) {
        let lkb = Lkb::new(td50, m, n).unwrap();
        check_ntcp_model(
            |x| lkb.ntcp(x, &w).unwrap(),
            |x, g| lkb.ntcp_and_gradient(x, &w, g).unwrap(),
            &d,
            scale,
            "LKB",
        )?;
    }

    #[test]
    fn logit_increases_with_dose_and_gradient_matches(
        (d, w) in doses_and_weights(12), td50 in 20.0f64..80.0, gamma in 0.3f64..4.0, a in -10.0f64..20.0,
        scale in 1.001f64..1.5
    ) {
        let model = LogitNtcp::new(td50, gamma, a).unwrap();
        check_ntcp_model(
            |x| model.ntcp(x, &w).unwrap(),
            |x, g| model.ntcp_and_gradient(x, &w, g).unwrap(),
            &d,
            scale,
            "logit",
        )?;
    }

    #[test]
    fn relative_seriality_increases_with_dose_and_gradient_matches(
        (d, w) in doses_and_weights(12), d50 in 20.0f64..80.0, gamma in 0.5f64..3.0, s in 0.01f64..5.0,
        scale in 1.001f64..1.5
    ) {
        let rs = RelativeSeriality::new(d50, gamma, s).unwrap();
        check_ntcp_model(
            |x| rs.ntcp(x, &w).unwrap(),
            |x, g| rs.ntcp_and_gradient(x, &w, g).unwrap(),
            &d,
            scale,
            "relative seriality",
        )?;
    }

    #[test]
    fn log_tcp_increases_with_dose_and_gradient_matches(
        (d, rho) in doses_and_weights(12), alpha in 0.1f64..0.5, ab in 1.0f64..15.0,
        po2_scale in 0.3f64..1.0, n in 1u32..40, scale in 1.001f64..1.5
    ) {
        // Per-voxel alpha (a hypoxia-like variation), beta and clonogen density.
        let alphas: Vec<f64> = (0..d.len()).map(|i| alpha * (po2_scale + (1.0 - po2_scale) * ((i % 3) as f64) / 2.0)).collect();
        let betas: Vec<f64> = alphas.iter().map(|a| a / ab).collect();
        let density: Vec<f64> = rho.iter().map(|r| r * 1e7).collect();
        let tcp = PoissonTcp::new(d.len(), n, TcpVoxelData {
            clonogen_density_per_cm3: VoxelValues::PerVoxel(&density),
            voxel_volume_cm3: 0.05.into(),
            alpha_per_gy: VoxelValues::PerVoxel(&alphas),
            beta_per_gy2: VoxelValues::PerVoxel(&betas),
        }).unwrap();
        let mut g = vec![0.0; d.len()];
        let l = tcp.log_tcp_and_gradient(&d, &mut g).unwrap();
        prop_assert!(l <= 0.0);
        prop_assert!(g.iter().all(|x| *x >= 0.0));
        let hotter: Vec<f64> = d.iter().map(|x| x * scale).collect();
        prop_assert!(tcp.log_tcp(&hotter).unwrap() >= l);
        check_gradient(|x| tcp.log_tcp(x).unwrap(), &d, &g, "log TCP");
        // TCP gradient = TCP * log-TCP gradient.
        let mut gt = vec![0.0; d.len()];
        let t = tcp.tcp_and_gradient(&d, &mut gt).unwrap();
        for (a, b) in gt.iter().zip(&g) {
            prop_assert!((a - t * b).abs() <= 1e-14 * (t * b).abs() + 1e-300);
        }
    }

    #[test]
    fn eqd2_derivative_matches(
        d in prop::collection::vec(0.5f64..100.0, 1..10), n in 1u32..40, ab in 0.5f64..20.0
    ) {
        let mut out = vec![0.0; d.len()];
        let mut der = vec![0.0; d.len()];
        eqd2_map_with_derivative(&d, n, ab.into(), &mut out, &mut der).unwrap();
        for i in 0..d.len() {
            let h = 1e-5 * d[i];
            let fd = (eqd2(d[i] + h, n, ab).unwrap() - eqd2(d[i] - h, n, ab).unwrap()) / (2.0 * h);
            prop_assert!((fd - der[i]).abs() <= 1e-7 * der[i]);
            prop_assert!((out[i] - eqd2(d[i], n, ab).unwrap()).abs() <= 1e-12 * out[i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn population_tcp_is_a_monotone_probability_with_exact_gradient(
        d in prop::collection::vec(40.0f64..90.0, 1..6), alpha in 0.15f64..0.5, rel_sd in 0.0f64..0.4,
        scale in 1.001f64..1.3, log_density in 5.0f64..8.0
    ) {
        let lq = LqParams::new(alpha, alpha / 10.0).unwrap();
        let model = PoissonTcp::uniform(d.len(), 35, lq, 10f64.powf(log_density), 0.5).unwrap();
        let pop = PopulationTcp::new(model, rel_sd, PopulationQuadrature::default()).unwrap();
        let t = pop.tcp(&d).unwrap();
        prop_assert!((0.0..=1.0).contains(&t));
        let hotter: Vec<f64> = d.iter().map(|x| x * scale).collect();
        prop_assert!(pop.tcp(&hotter).unwrap() >= t);
        let mut g = vec![0.0; d.len()];
        let l = pop.log_tcp_and_gradient(&d, &mut g).unwrap();
        prop_assert!((l.exp() - t).abs() <= 1e-12);
        prop_assert!(g.iter().all(|x| *x >= 0.0));
        check_gradient(|x| pop.log_tcp(x).unwrap(), &d, &g, "population log TCP");
        let mut gt = vec![0.0; d.len()];
        pop.tcp_and_gradient(&d, &mut gt).unwrap();
        check_gradient(|x| pop.tcp(x).unwrap(), &d, &gt, "population TCP");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The Alper & Howard-Flanders OER: `OER(0) = m`, `1 <= OER(p) <= m`,
    /// non-increasing in pO2, and the radiosensitivity `1 / OER` at `p = K` lies
    /// half-way between anoxic (`1/m`) and oxic (1). The per-voxel maps equal the
    /// scalar hypoxic parameters voxel by voxel.
    #[test]
    fn oer_is_bounded_monotone_and_half_way_at_k(
        m_alpha in 1.0f64..4.0, m_beta in 1.0f64..4.0, k in 0.5f64..20.0,
        p in 0.0f64..200.0, dp in 0.0f64..50.0, alpha in 0.05f64..0.8, ab in 0.5f64..20.0
    ) {
        let oer = OerModel::new(m_alpha, m_beta, k).unwrap();
        let o = oer.oer_alpha(p).unwrap();
        prop_assert!((1.0..=m_alpha * (1.0 + 1e-15)).contains(&o), "OER {o} outside [1, {m_alpha}]");
        prop_assert!(oer.oer_alpha(p + dp).unwrap() <= o * (1.0 + 1e-15));
        prop_assert!((oer.oer_alpha(0.0).unwrap() - m_alpha).abs() <= 1e-15 * m_alpha);
        let half = 0.5 * (1.0 / m_beta + 1.0);
        prop_assert!((1.0 / oer.oer_beta(k).unwrap() - half).abs() <= 1e-14);
        let lq = LqParams::from_alpha_and_ratio(alpha, AlphaBeta::new(ab).unwrap()).unwrap();
        let po2 = [0.0, p, p + dp];
        let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
        oer.hypoxic_maps(&lq, &po2, &mut a, &mut b).unwrap();
        for (i, &pi) in po2.iter().enumerate() {
            let h = oer.hypoxic_lq(&lq, pi).unwrap();
            prop_assert!((a[i] - h.alpha_per_gy()).abs() <= 1e-15 * h.alpha_per_gy());
            prop_assert!((b[i] - h.beta_per_gy2()).abs() <= 1e-15 * h.beta_per_gy2());
            // Hypoxia never makes cells more sensitive.
            prop_assert!(a[i] <= alpha * (1.0 + 1e-15) && b[i] <= lq.beta_per_gy2() * (1.0 + 1e-15));
        }
    }

    /// `dose_for_log_cell_kill` inverts the LQ effect, and GARD's dose for a
    /// target GARD gives that GARD back (Scott et al. 2017 define GARD as the LQ
    /// log cell kill with the patient's alpha).
    #[test]
    fn log_cell_kill_and_gard_round_trip(
        alpha in 0.02f64..0.8, beta in 0.0f64..0.2, e in 0.0f64..100.0, n in 1u32..60,
        rsi in 0.05f64..0.8
    ) {
        let lq = LqParams::new(alpha, beta).unwrap();
        let d = dose_for_log_cell_kill(&lq, e, n).unwrap();
        prop_assert!(d >= 0.0);
        let back = -ln_survival(&lq, d, n).unwrap();
        prop_assert!((back - e).abs() <= 1e-12 * e.max(1.0), "{e} -> {d} Gy -> {back}");
        let g = Gard::from_rsi(rsi).unwrap();
        prop_assert!(g.alpha_per_gy() > 0.0);
        let dg = g.total_dose_for(e, n).unwrap();
        let gard = g.gard(&Fractionation::new(dg, n).unwrap());
        prop_assert!((gard - e).abs() <= 1e-12 * e.max(1.0));
    }

    /// BED rises with dose and with the dose per fraction (fewer fractions, or a
    /// lower alpha/beta); EQD2 lies between the physical dose and BED when
    /// `d >= 2 Gy`; the map equals the scalar form voxel by voxel.
    #[test]
    fn bed_and_eqd2_orderings(
        total in 0.0f64..120.0, dd in 0.01f64..20.0, n in 2u32..50, ab in 0.3f64..30.0,
        dab in 0.01f64..10.0
    ) {
        let b = bed(total, n, ab).unwrap();
        prop_assert!(bed(total + dd, n, ab).unwrap() > b);
        prop_assert!(bed(total, n - 1, ab).unwrap() >= b);
        prop_assert!(bed(total, n, ab + dab).unwrap() <= b);
        let e = eqd2(total, n, ab).unwrap();
        if total / f64::from(n) >= 2.0 {
            prop_assert!(e >= total * (1.0 - 1e-15) && e <= b * (1.0 + 1e-15));
        } else {
            prop_assert!(e <= total * (1.0 + 1e-15));
        }
        let doses = [total, total + dd];
        let mut map = [0.0; 2];
        bed_map(&doses, n, ab.into(), &mut map).unwrap();
        prop_assert!((map[0] - b).abs() <= 1e-12 * b.max(1.0));
    }

    /// The effective BED falls with the overall time, and the iso-effective dose
    /// with time gives back the target effective BED (Withers/Fowler time factor).
    #[test]
    fn repopulation_time_factor_round_trip(
        total in 20.0f64..90.0, n in 10u32..40, m in 5u32..40, ab in 1.0f64..20.0,
        kickoff in 0.0f64..35.0, tpot in 1.0f64..10.0, t in 0.0f64..60.0, dt in 0.0f64..20.0
    ) {
        let r = Repopulation::tpot(kickoff, 0.35, tpot).unwrap();
        let abv = AlphaBeta::new(ab).unwrap();
        let fx = Fractionation::new(total, n).unwrap();
        let e1 = effective_bed(&fx.with_overall_time_days(t).unwrap(), abv, &r).unwrap();
        let e2 = effective_bed(&fx.with_overall_time_days(t + dt).unwrap(), abv, &r).unwrap();
        prop_assert!(e2 <= e1);
        let loss_new = r.bed_loss_gy(t + dt);
        prop_assume!(e1 + loss_new >= 0.0);
        let d = isoeffective_total_dose_with_time(e1, m, t + dt, abv, &r).unwrap();
        let achieved = effective_bed(
            &Fractionation::new(d, m).unwrap().with_overall_time_days(t + dt).unwrap(), abv, &r,
        ).unwrap();
        prop_assert!((achieved - e1).abs() <= 1e-9 * e1.abs().max(1.0), "{e1} vs {achieved}");
    }
}
