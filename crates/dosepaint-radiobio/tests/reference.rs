//! Published numbers and closed forms.
//!
//! The worked examples of `shared/reference/radiobiology.csv` (sources listed in
//! `shared/reference/README.md`: Fowler's BED, Withers' EQD2, LKB with the QUANTEC
//! parotid parameters of Deasy et al. 2010 and the spinal cord parameters of Burman
//! et al. 1991, the OER of Alper & Howard-Flanders with the parameters of Carlson,
//! Stewart & Semenenko 2006, Med Phys 33:3105) are checked twice: every row read from
//! the file at test time, and every row restated as an explicit test below, so the
//! tests still mean something where the file is absent.

use approx::assert_abs_diff_eq;
use dosepaint_radiobio::{
    AlphaBeta, BoostPlan, Error, Fractionation, Gard, Geud, Lkb, LogitNtcp, LqParams,
    ModelParameters, OerModel, ParameterLibrary, ParameterSet, PoissonTcp, PopulationQuadrature,
    PopulationTcp, RelativeSeriality, Repopulation, Schedule, TcpVoxelData, VoxelValues, Weights,
    bed, bed_map, compare_sequential_and_sib, dose_for_log_cell_kill, effective_bed, eqd2,
    eqd2_map_with_derivative, isoeffective_total_dose, isoeffective_total_dose_with_time,
    survival_fraction, survival_map, weekday_overall_time_days,
};

// ---------------------------------------------------------------------------
// shared/reference/radiobiology.csv, row by row
// ---------------------------------------------------------------------------

fn csv_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/radiobiology.csv")
}

/// Leading number of a token such as "70 Gy" or "0.5 mmHg".
fn number(token: &str) -> f64 {
    let t = token.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(t.len());
    t[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number at the start of `{token}`"))
}

/// Last number in a free-text token such as "parotid uniform mean dose 26 Gy".
fn last_number(token: &str) -> f64 {
    token
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no number in `{token}`"))
}

/// Split "a=1;D=[60;70];v=[0.5;0.5]" on ';' outside brackets.
fn split_inputs(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ';' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn list(s: &str) -> Vec<f64> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(';')
        .map(number)
        .collect()
}

fn kv(inputs: &[String], key: &str) -> String {
    inputs
        .iter()
        .find_map(|t| {
            let (k, v) = t.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("input `{key}` missing in {inputs:?}"))
}

fn evaluate_row(case: &str, inputs: &[String]) -> f64 {
    let oer = OerModel::carlson_2006();
    match case {
        "bed" | "eqd2" => {
            let total = number(&kv(inputs, "total"));
            let n: u32 = kv(inputs, "fractions").parse().expect("fractions");
            let ab = number(&kv(inputs, "alpha_beta"));
            if case == "bed" {
                bed(total, n, ab).unwrap()
            } else {
                eqd2(total, n, ab).unwrap()
            }
        }
        "ntcp_lkb" => {
            let dose = last_number(&inputs[0]);
            let lkb = Lkb::new(
                number(&kv(inputs, "TD50")),
                number(&kv(inputs, "m")),
                number(&kv(inputs, "n")),
            )
            .unwrap();
            // A uniform dose, on a few voxels.
            lkb.ntcp(&[dose; 4], Weights::Uniform).unwrap()
        }
        "oer_alpha" => oer.oer_alpha(number(&kv(inputs, "pO2"))).unwrap(),
        "oer_beta" => oer.oer_beta(number(&kv(inputs, "pO2"))).unwrap(),
        "geud" => {
            let a = number(&kv(inputs, "a"));
            let d = list(&kv(inputs, "D"));
            let v = list(&kv(inputs, "v"));
            Geud::new(a).unwrap().value(&d, &v).unwrap()
        }
        other => panic!("radiobiology.csv has a case `{other}` this test does not handle yet"),
    }
}

#[test]
fn every_row_of_shared_reference_radiobiology_csv() {
    let path = csv_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): the shared reference data must sit beside the clone \
             (shared/ next to main/)",
            path.display()
        )
    });
    let mut checked = 0;
    for (line_no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "line {}: `{line}`", line_no + 1);
        let inputs = split_inputs(fields[1]);
        let expected = number(fields[2]);
        let tol = number(fields[3]);
        let got = evaluate_row(fields[0], &inputs);
        assert!(
            (got - expected).abs() <= tol,
            "radiobiology.csv line {}: {line}\n  got {got}, expected {expected} +- {tol}",
            line_no + 1
        );
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} rows found in {}",
        path.display()
    );
}

// The same rows, restated (radiobiology.csv; Fowler BED, Withers EQD2).

#[test]
fn csv_bed_eqd2_rows() {
    assert_abs_diff_eq!(bed(70.0, 35, 10.0).unwrap(), 84.0, epsilon = 1e-9);
    assert_abs_diff_eq!(eqd2(70.0, 35, 10.0).unwrap(), 70.0, epsilon = 1e-9);
    assert_abs_diff_eq!(bed(60.0, 20, 10.0).unwrap(), 78.0, epsilon = 1e-9);
    assert_abs_diff_eq!(eqd2(60.0, 20, 10.0).unwrap(), 65.0, epsilon = 1e-9);
    assert_abs_diff_eq!(bed(60.0, 20, 3.0).unwrap(), 120.0, epsilon = 1e-9);
    assert_abs_diff_eq!(eqd2(60.0, 20, 3.0).unwrap(), 72.0, epsilon = 1e-9);
    // FLAME-like prostate schedules with alpha/beta 1.5 Gy.
    assert_abs_diff_eq!(eqd2(77.0, 35, 1.5).unwrap(), 81.4, epsilon = 0.05);
    assert_abs_diff_eq!(eqd2(95.0, 35, 1.5).unwrap(), 114.4, epsilon = 0.05);
}

#[test]
fn csv_lkb_rows() {
    // QUANTEC parotid (Deasy et al. 2010): TD50 39.9 Gy, m 0.40, n 1.
    let parotid = Lkb::new(39.9, 0.40, 1.0).unwrap();
    assert_abs_diff_eq!(
        parotid.ntcp(&[26.0; 3], Weights::Uniform).unwrap(),
        0.192,
        epsilon = 0.002
    );
    assert_abs_diff_eq!(
        parotid.ntcp(&[39.9; 3], Weights::Uniform).unwrap(),
        0.5,
        epsilon = 1e-9
    );
    // Spinal cord (Burman et al. 1991): TD50 66.5 Gy, m 0.175, n 0.05.
    let cord = Lkb::new(66.5, 0.175, 0.05).unwrap();
    assert_abs_diff_eq!(
        cord.ntcp(&[50.0; 5], Weights::Uniform).unwrap(),
        0.078,
        epsilon = 0.002
    );
}

#[test]
fn csv_oer_rows() {
    // Carlson, Stewart & Semenenko 2006: m_alpha 2.5, m_beta 3.0, K 3.28 mmHg.
    let o = OerModel::carlson_2006();
    assert_abs_diff_eq!(o.oer_alpha(0.0).unwrap(), 2.5, epsilon = 1e-9);
    assert_abs_diff_eq!(o.oer_alpha(0.5).unwrap(), 2.09, epsilon = 0.01);
    assert_abs_diff_eq!(o.oer_alpha(2.5).unwrap(), 1.52, epsilon = 0.01);
    assert_abs_diff_eq!(o.oer_alpha(10.0).unwrap(), 1.17, epsilon = 0.01);
    assert_abs_diff_eq!(o.oer_alpha(40.0).unwrap(), 1.05, epsilon = 0.01);
    assert_abs_diff_eq!(o.oer_beta(0.0).unwrap(), 3.0, epsilon = 1e-9);
    assert_abs_diff_eq!(o.oer_beta(2.5).unwrap(), 1.61, epsilon = 0.01);
    assert_abs_diff_eq!(o.oer_beta(10.0).unwrap(), 1.20, epsilon = 0.01);
    // Hypoxic LQ parameters: alpha / OER_alpha, beta / OER_beta^2.
    let lq = LqParams::new(0.35, 0.035).unwrap();
    let h = o.hypoxic_lq(&lq, 0.0).unwrap();
    assert_abs_diff_eq!(h.alpha_per_gy(), 0.35 / 2.5, epsilon = 1e-15);
    assert_abs_diff_eq!(h.beta_per_gy2(), 0.035 / 9.0, epsilon = 1e-15);
    let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
    o.hypoxic_maps(&lq, &[0.0, 1e9], &mut a, &mut b).unwrap();
    assert_abs_diff_eq!(a[0], 0.14, epsilon = 1e-15);
    assert_abs_diff_eq!(a[1], 0.35, epsilon = 1e-6);
    assert!(matches!(
        o.hypoxic_maps(&lq, &[1.0, -1.0], &mut a, &mut b),
        Err(Error::InvalidVoxelValue {
            quantity: "po2_mmhg",
            index: 1,
            ..
        })
    ));
}

#[test]
fn csv_geud_rows() {
    let d = [60.0, 70.0];
    let v = [0.5, 0.5];
    assert_abs_diff_eq!(
        Geud::new(1.0).unwrap().value(&d, &v).unwrap(),
        65.0,
        epsilon = 1e-9
    );
    assert_abs_diff_eq!(
        Geud::new(-10.0).unwrap().value(&d, &v).unwrap(),
        63.07,
        epsilon = 0.01
    );
}

// ---------------------------------------------------------------------------
// LQ closed forms
// ---------------------------------------------------------------------------

#[test]
fn survival_closed_form() {
    let lq = LqParams::new(0.3, 0.03).unwrap();
    // 30 x 2 Gy: -ln S = 30 (0.3*2 + 0.03*4) = 21.6
    assert_abs_diff_eq!(
        survival_fraction(&lq, 60.0, 30).unwrap(),
        (-21.6f64).exp(),
        epsilon = 1e-20
    );
    let mut out = [0.0; 2];
    survival_map(&[60.0, 0.0], 30, 0.3.into(), 0.03.into(), &mut out).unwrap();
    assert_abs_diff_eq!(out[0], (-21.6f64).exp(), epsilon = 1e-20);
    assert_abs_diff_eq!(out[1], 1.0, epsilon = 0.0);
    // Dose for a log cell kill inverts the effect.
    let d = dose_for_log_cell_kill(&lq, 21.6, 30).unwrap();
    assert_abs_diff_eq!(d, 60.0, epsilon = 1e-10);
}

#[test]
fn isoeffective_schedules() {
    let ab = AlphaBeta::new(3.0).unwrap();
    // 60 Gy / 20 fx: BED 120 Gy3; in 36 fractions that is 72 Gy = 36 x 2 Gy = EQD2.
    let fx = Fractionation::new(60.0, 20).unwrap();
    let iso = fx.isoeffective_in(ab, 36).unwrap();
    assert_abs_diff_eq!(iso.total_dose_gy(), 72.0, epsilon = 1e-9);
    assert_abs_diff_eq!(iso.dose_per_fraction_gy(), 2.0, epsilon = 1e-12);
    // Single fraction with the same BED: D + D^2/3 = 120 -> D = (-3 + sqrt(9 + 1440)) / 2.
    let single = isoeffective_total_dose(120.0, 1, ab).unwrap();
    assert_abs_diff_eq!(single, 0.5 * (1449f64.sqrt() - 3.0), epsilon = 1e-12);
    assert_abs_diff_eq!(
        isoeffective_total_dose(0.0, 5, ab).unwrap(),
        0.0,
        epsilon = 0.0
    );
}

#[test]
fn bed_map_and_eqd2_derivative() {
    let doses = [70.0, 35.0, 0.0];
    let ab = [10.0, 3.0, 3.0];
    let mut out = [0.0; 3];
    bed_map(&doses, 35, VoxelValues::PerVoxel(&ab), &mut out).unwrap();
    assert_abs_diff_eq!(out[0], 84.0, epsilon = 1e-12);
    assert_abs_diff_eq!(out[1], 35.0 * (1.0 + 1.0 / 3.0), epsilon = 1e-12);
    let mut deriv = [0.0; 3];
    eqd2_map_with_derivative(&doses, 35, 3.0.into(), &mut out, &mut deriv).unwrap();
    // dEQD2/dD = (1 + 2D/(n ab)) / (1 + 2/ab); at 2 Gy per fraction: (1 + 4/3)/(1 + 2/3)
    assert_abs_diff_eq!(deriv[0], (7.0 / 3.0) / (5.0 / 3.0), epsilon = 1e-12);
    assert_abs_diff_eq!(deriv[2], 0.6, epsilon = 1e-12);
}

// ---------------------------------------------------------------------------
// Repopulation and schedules
// ---------------------------------------------------------------------------

#[test]
fn weekday_overall_times() {
    assert_abs_diff_eq!(weekday_overall_time_days(1), 0.0, epsilon = 0.0);
    assert_abs_diff_eq!(weekday_overall_time_days(5), 4.0, epsilon = 0.0);
    assert_abs_diff_eq!(weekday_overall_time_days(6), 7.0, epsilon = 0.0);
    assert_abs_diff_eq!(weekday_overall_time_days(30), 39.0, epsilon = 0.0);
    assert_abs_diff_eq!(weekday_overall_time_days(35), 46.0, epsilon = 0.0);
}

#[test]
fn repopulation_forms() {
    // Fowler 2008 (Clin Oncol 20:113): T_k 21 d, alpha 0.35 /Gy, T_pot 3 d.
    let r = Repopulation::tpot(21.0, 0.35, 3.0).unwrap();
    let rate = std::f64::consts::LN_2 / 1.05;
    assert_abs_diff_eq!(r.bed_per_day_gy(), rate, epsilon = 1e-15);
    assert_abs_diff_eq!(r.bed_loss_gy(20.0), 0.0, epsilon = 0.0);
    assert_abs_diff_eq!(r.bed_loss_gy(46.0), 25.0 * rate, epsilon = 1e-12);
    // 70 Gy / 35 fx over 46 days, alpha/beta 10.
    let fx = Fractionation::new(70.0, 35)
        .unwrap()
        .with_weekday_overall_time();
    let ab = AlphaBeta::new(10.0).unwrap();
    assert_abs_diff_eq!(
        effective_bed(&fx, ab, &r).unwrap(),
        84.0 - 25.0 * rate,
        epsilon = 1e-12
    );
    // Without an overall time the correction is refused.
    assert!(matches!(
        effective_bed(&Fractionation::new(70.0, 35).unwrap(), ab, &r),
        Err(Error::InvalidParameter {
            name: "overall_time_days",
            ..
        })
    ));
    // Withers 1988 in EQD2 units: 0.6 Gy/day -> 0.72 Gy10/day after day 28.
    let w = Repopulation::from_eqd2_per_day(28.0, 0.6, ab).unwrap();
    assert_abs_diff_eq!(w.bed_loss_gy(38.0), 7.2, epsilon = 1e-12);
    // Iso-effect with time: the dose in 30 fractions (39 days) matching 67.5 Gy10 effective.
    let target = 84.0 - 25.0 * rate;
    let d = isoeffective_total_dose_with_time(target, 30, 39.0, ab, &r).unwrap();
    let achieved = d * (1.0 + d / 300.0) - 18.0 * rate;
    assert_abs_diff_eq!(achieved, target, epsilon = 1e-9);
}

#[test]
fn sequential_boost_vs_sib_by_hand() {
    let ab = AlphaBeta::new(10.0).unwrap();
    let r = Repopulation::tpot(21.0, 0.35, 3.0).unwrap();
    let rate = r.bed_per_day_gy();
    let plan = BoostPlan {
        elective_dose_gy: 50.0,
        base_fractions: 25,
        boost_dose_gy: 20.0,
        boost_fractions: 10,
        sib_fractions: 30,
    };
    let c = compare_sequential_and_sib(&plan, ab, &r).unwrap();
    // Sequential elective: 50 Gy / 25 fx in 32 days (25 weekdays).
    assert_abs_diff_eq!(c.sequential[0].overall_time_days, 32.0, epsilon = 0.0);
    assert_abs_diff_eq!(c.sequential[0].bed_gy, 60.0, epsilon = 1e-12);
    assert_abs_diff_eq!(
        c.sequential[0].repopulation_loss_gy,
        11.0 * rate,
        epsilon = 1e-12
    );
    // Sequential boost: 50/25 + 20/10 = 84 Gy10 over 46 days.
    assert_abs_diff_eq!(c.sequential[1].overall_time_days, 46.0, epsilon = 0.0);
    assert_abs_diff_eq!(c.sequential[1].bed_gy, 84.0, epsilon = 1e-12);
    assert_abs_diff_eq!(
        c.sequential[1].effective_bed_gy,
        84.0 - 25.0 * rate,
        epsilon = 1e-12
    );
    assert_eq!(c.sequential[1].fractions, 35);
    // SIB: 70 Gy and 50 Gy in 30 fractions over 39 days.
    let sib_boost_bed = 70.0 * (1.0 + 70.0 / 300.0);
    assert_abs_diff_eq!(c.sib[1].bed_gy, sib_boost_bed, epsilon = 1e-12);
    assert_abs_diff_eq!(
        c.sib[1].eqd2_gy,
        (sib_boost_bed - 18.0 * rate) / 1.2,
        epsilon = 1e-12
    );
    let sib_elective_bed = 50.0 * (1.0 + 50.0 / 300.0);
    assert_abs_diff_eq!(c.sib[0].bed_gy, sib_elective_bed, epsilon = 1e-12);
    // What the SIB needs to match the sequential boost volume: less than 70 Gy.
    let iso = c.sib_isoeffective_doses_gy[1];
    assert!(iso < 70.0);
    assert_abs_diff_eq!(
        iso * (1.0 + iso / 300.0) - 18.0 * rate,
        84.0 - 25.0 * rate,
        epsilon = 1e-9
    );
    // Explicit phases: a gap is allowed, overlapping phases are not.
    let bad = Schedule::new(vec![
        dosepaint_radiobio::Phase {
            name: "a".into(),
            fractions: 5,
            first_day: 0.0,
            last_day: 4.0,
        },
        dosepaint_radiobio::Phase {
            name: "b".into(),
            fractions: 5,
            first_day: 3.0,
            last_day: 8.0,
        },
    ]);
    assert!(matches!(bad, Err(Error::InvalidSchedule(_))));
}

// ---------------------------------------------------------------------------
// GARD
// ---------------------------------------------------------------------------

#[test]
fn gard_closed_form_and_limits() {
    // Scott et al. 2017: RSI = exp(-(2 alpha + 4 beta)), beta = 0.05.
    let g = Gard::from_rsi(0.3).unwrap();
    let alpha = -(0.3f64.ln()) / 2.0 - 0.1;
    assert_abs_diff_eq!(g.alpha_per_gy(), alpha, epsilon = 1e-15);
    // The LQ survival at 2 Gy reproduces the RSI.
    let sf2 = survival_fraction(&g.lq(), 2.0, 1).unwrap();
    assert_abs_diff_eq!(sf2, 0.3, epsilon = 1e-14);
    // GARD of 70 Gy / 35 fx = 70 (alpha + 0.1).
    let fx = Fractionation::new(70.0, 35).unwrap();
    assert_abs_diff_eq!(g.gard(&fx), 70.0 * (alpha + 0.1), epsilon = 1e-12);
    let d = g.total_dose_for(g.gard(&fx), 35).unwrap();
    assert_abs_diff_eq!(d, 70.0, epsilon = 1e-9);
    let mut out = [0.0; 2];
    g.gard_map(&[70.0, 0.0], 35, &mut out).unwrap();
    assert_abs_diff_eq!(out[0], g.gard(&fx), epsilon = 1e-12);
    // RSI outside (0, e^-0.2) would give alpha <= 0.
    for bad in [0.0, 0.82, 1.0, f64::NAN, -0.1] {
        assert!(matches!(
            Gard::from_rsi(bad),
            Err(Error::InvalidParameter { name: "rsi", .. })
        ));
    }
}

// ---------------------------------------------------------------------------
// gEUD
// ---------------------------------------------------------------------------

#[test]
fn geud_limits_and_zero_doses() {
    let d = [10.0, 20.0, 40.0];
    let v = [0.2, 0.3, 0.5];
    // a -> 0 is the geometric mean.
    let geo = (0.2 * 10f64.ln() + 0.3 * 20f64.ln() + 0.5 * 40f64.ln()).exp();
    assert_abs_diff_eq!(
        Geud::new(0.0).unwrap().value(&d, &v).unwrap(),
        geo,
        epsilon = 1e-12
    );
    for a in [1e-12, -1e-12, 1e-6, -1e-4, 0.01, -0.049, 0.051] {
        let g = Geud::new(a).unwrap().value(&d, &v).unwrap();
        // First-order expansion: geo * exp(a var/2), var = weighted variance of ln D.
        let mu = geo.ln();
        let var: f64 = d
            .iter()
            .zip(&v)
            .map(|(x, w)| w * (x.ln() - mu).powi(2))
            .sum();
        let approx = geo * (a * var / 2.0).exp();
        assert!(
            (g - approx).abs() < 1e-6 * geo.max(1.0) * (1.0 + 1e3 * a.abs()).powi(2)
                && (g - geo).abs() < 2.0 * a.abs() * geo + 1e-12,
            "a = {a}: {g} vs {approx}"
        );
    }
    // Large |a|: towards min and max.
    assert_abs_diff_eq!(
        Geud::new(-200.0).unwrap().value(&d, &v).unwrap(),
        10.0,
        epsilon = 0.1
    );
    assert_abs_diff_eq!(
        Geud::new(200.0).unwrap().value(&d, &v).unwrap(),
        40.0,
        epsilon = 0.2
    );
    // Extreme doses do not overflow.
    let tiny = [1e-200, 1e-190];
    let g = Geud::new(-10.0)
        .unwrap()
        .value(&tiny, Weights::Uniform)
        .unwrap();
    assert!(g > 1e-200 && g < 1e-190);
    // Zero dose with a < 0: gEUD 0, gradient (v_i)^(1/a) at the single zero voxel.
    let dz = [0.0, 20.0, 40.0];
    let geud = Geud::new(-10.0).unwrap();
    let mut grad = [0.0; 3];
    let val = geud.value_and_gradient(&dz, &v, &mut grad).unwrap();
    assert_abs_diff_eq!(val, 0.0, epsilon = 0.0);
    assert_abs_diff_eq!(grad[0], 0.2f64.powf(-0.1), epsilon = 1e-12);
    assert_abs_diff_eq!(grad[1], 0.0, epsilon = 0.0);
    // ... which is the one-sided derivative.
    let h = 1e-9;
    let fwd = geud.value(&[h, 20.0, 40.0], &v).unwrap() / h;
    assert_abs_diff_eq!(fwd, grad[0], epsilon = 1e-6);
    // Two zero voxels: v_i V_Z^(1/a - 1).
    let v2 = [0.2, 0.3, 0.5];
    geud.value_and_gradient(&[0.0, 0.0, 40.0], &v2, &mut grad)
        .unwrap();
    assert_abs_diff_eq!(grad[0], 0.2 * 0.5f64.powf(-1.1), epsilon = 1e-12);
    assert_abs_diff_eq!(grad[1], 0.3 * 0.5f64.powf(-1.1), epsilon = 1e-12);
    // All zero: gradient v for any a.
    for a in [-5.0, 0.0, 0.5, 1.0, 3.0] {
        Geud::new(a)
            .unwrap()
            .value_and_gradient(&[0.0; 3], &v2, &mut grad)
            .unwrap();
        for (g, w) in grad.iter().zip(&v2) {
            assert_abs_diff_eq!(*g, *w, epsilon = 1e-15);
        }
    }
    // a > 1: zero dose is harmless, its partial derivative is 0.
    let g3 = Geud::new(3.0).unwrap();
    g3.value_and_gradient(&dz, &v, &mut grad).unwrap();
    assert_abs_diff_eq!(grad[0], 0.0, epsilon = 0.0);
    // a = 1 at zero dose: v_i.
    Geud::new(1.0)
        .unwrap()
        .value_and_gradient(&dz, &v, &mut grad)
        .unwrap();
    assert_abs_diff_eq!(grad[0], 0.2, epsilon = 1e-15);
    // 0 <= a < 1 with a zero dose: infinite derivative, a named error.
    for a in [0.0, 0.5] {
        assert!(matches!(
            Geud::new(a).unwrap().value_and_gradient(&dz, &v, &mut grad),
            Err(Error::GradientUndefined { index: 0, .. })
        ));
        // The value itself is fine.
        assert!(Geud::new(a).unwrap().value(&dz, &v).is_ok());
    }
    // Zero weight hides a zero dose.
    let val = geud.value(&dz, &[0.0, 0.5, 0.5]).unwrap();
    assert!(val > 20.0 && val < 40.0);
}

#[test]
fn geud_is_deterministic_across_thread_counts() {
    let n = 300_000;
    let doses: Vec<f64> = (0..n)
        .map(|i| 50.0 + 30.0 * ((i as f64) * 0.37).sin().abs())
        .collect();
    let w: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut g = vec![0.0; n];
            let v = Geud::new(-10.0)
                .unwrap()
                .value_and_gradient(&doses, &w, &mut g)
                .unwrap();
            let lkb = Lkb::new(40.0, 0.4, 0.5).unwrap();
            let mut g2 = vec![0.0; n];
            let p = lkb.ntcp_and_gradient(&doses, &w, &mut g2).unwrap();
            (v.to_bits(), p.to_bits(), g, g2)
        })
    };
    let (a, b, g, g2) = run(1);
    let (a2, b2, h, h2) = run(3);
    assert_eq!(a, a2);
    assert_eq!(b, b2);
    assert!(g.iter().zip(&h).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert!(g2.iter().zip(&h2).all(|(x, y)| x.to_bits() == y.to_bits()));
}

// ---------------------------------------------------------------------------
// NTCP
// ---------------------------------------------------------------------------

#[test]
fn ntcp_models_at_their_midpoints() {
    // Logit: NTCP(TD50) = 1/2 and dNTCP/dEUD = gamma50 / TD50 there (Niemierko).
    let logit = LogitNtcp::new(46.0, 2.0, 1.0).unwrap();
    assert_abs_diff_eq!(
        logit.ntcp(&[46.0; 2], Weights::Uniform).unwrap(),
        0.5,
        epsilon = 1e-12
    );
    assert_abs_diff_eq!(
        logit.ntcp_slope_from_geud(46.0).unwrap(),
        2.0 / 46.0,
        epsilon = 1e-15
    );
    let k_form = LogitNtcp::from_k(46.0, 8.0, 1.0).unwrap();
    assert_abs_diff_eq!(k_form.gamma50(), 2.0, epsilon = 0.0);
    // NTCP = 1/(1 + (TD50/EUD)^k)
    assert_abs_diff_eq!(
        k_form.ntcp_from_geud(30.0),
        1.0 / (1.0 + (46.0f64 / 30.0).powi(8)),
        epsilon = 1e-15
    );
    // LKB: slope at TD50 = 1 / (sqrt(2 pi) m TD50).
    let lkb = Lkb::new(39.9, 0.4, 1.0).unwrap();
    assert_abs_diff_eq!(
        lkb.ntcp_slope_from_geud(39.9),
        1.0 / ((2.0 * std::f64::consts::PI).sqrt() * 0.4 * 39.9),
        epsilon = 1e-15
    );
    // Relative seriality: P(D50) = 1/2, so NTCP(uniform D50) = 1/2 for any s.
    for s in [0.01, 0.5, 1.0, 4.0] {
        let rs = RelativeSeriality::new(52.2, 1.28, s).unwrap();
        assert_abs_diff_eq!(
            rs.ntcp(&[52.2; 3], Weights::Uniform).unwrap(),
            0.5,
            epsilon = 1e-12
        );
    }
    // s = 1 is a serial organ: NTCP = 1 - prod (1 - P_i)^v_i.
    let rs = RelativeSeriality::new(52.2, 1.28, 1.0).unwrap();
    let (p1, p2) = (rs.voxel_response(30.0), rs.voxel_response(60.0));
    assert_abs_diff_eq!(
        rs.ntcp(&[30.0, 60.0], &[0.25, 0.75]).unwrap(),
        1.0 - (1.0 - p1).powf(0.25) * (1.0 - p2).powf(0.75),
        epsilon = 1e-14
    );
    // Extreme doses saturate without NaN.
    let mut g = [0.0; 2];
    let p = rs
        .ntcp_and_gradient(&[500.0, 10.0], Weights::Uniform, &mut g)
        .unwrap();
    assert!(p > 1.0 - 1e-6 && p < 1.0, "{p}");
    assert!(g.iter().all(|x| x.is_finite() && *x >= 0.0));
    let p = rs
        .ntcp_and_gradient(&[5000.0, 10.0], Weights::Uniform, &mut g)
        .unwrap();
    assert_abs_diff_eq!(p, 1.0, epsilon = 0.0);
    assert!(g.iter().all(|x| x.is_finite() && *x >= 0.0));
    // At zero dose the Poisson response is 2^(-exp(e gamma)) ~ 1.7e-10, not 0.
    let p0 = rs
        .ntcp_and_gradient(&[0.0, 0.0], Weights::Uniform, &mut g)
        .unwrap();
    assert_abs_diff_eq!(p0, rs.voxel_response(0.0), epsilon = 1e-20);
    assert_abs_diff_eq!(
        p0,
        2f64.powf(-(std::f64::consts::E * 1.28).exp()),
        epsilon = 1e-20
    );
    assert!(g.iter().all(|x| x.is_finite()));
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

#[test]
fn poisson_tcp_closed_forms() {
    let lq = LqParams::new(0.3, 0.03).unwrap();
    let tcp = PoissonTcp::uniform(10, 35, lq, 1e7, 0.1).unwrap();
    assert_abs_diff_eq!(tcp.total_clonogens(), 1e7, epsilon = 1e-3);
    // TCP = 1/2 when N S = ln 2, i.e. -ln S = ln(N / ln 2).
    let d50 = dose_for_log_cell_kill(&lq, (1e7 / std::f64::consts::LN_2).ln(), 35).unwrap();
    assert_abs_diff_eq!(tcp.tcp(&[d50; 10]).unwrap(), 0.5, epsilon = 1e-12);
    // The gradient of TCP at D50: d TCP / d D_i = TCP * N_i S_i (alpha + 2 beta D / n).
    let mut g = [0.0; 10];
    tcp.tcp_and_gradient(&[d50; 10], &mut g).unwrap();
    let expected = 0.5 * (std::f64::consts::LN_2 / 10.0) * (0.3 + 2.0 * 0.03 * d50 / 35.0);
    for gi in g {
        assert_abs_diff_eq!(gi, expected, epsilon = 1e-14);
    }
    // log-TCP stays finite where TCP underflows (zero dose, 1e12 clonogens).
    let big = PoissonTcp::uniform(1000, 35, lq, 1e8, 10.0).unwrap();
    let l = big.log_tcp(&vec![0.0; 1000]).unwrap();
    assert_abs_diff_eq!(l, -1e12, epsilon = 1e-3);
    assert_abs_diff_eq!(big.tcp(&vec![0.0; 1000]).unwrap(), 0.0, epsilon = 0.0);
    // Voxels without clonogens do not count.
    let rho = [0.0, 1e7];
    let t2 = PoissonTcp::new(
        2,
        35,
        TcpVoxelData {
            clonogen_density_per_cm3: VoxelValues::PerVoxel(&rho),
            voxel_volume_cm3: 0.1.into(),
            alpha_per_gy: 0.3.into(),
            beta_per_gy2: 0.03.into(),
        },
    )
    .unwrap();
    let mut g = [0.0; 2];
    let l = t2.log_tcp_and_gradient(&[0.0, 60.0], &mut g).unwrap();
    assert_abs_diff_eq!(
        l,
        -1e6 * (-(0.3 * 60.0 + 0.03 * 3600.0 / 35.0f64)).exp(),
        epsilon = 1e-12
    );
    assert_abs_diff_eq!(g[0], 0.0, epsilon = 0.0);
}

/// Independent population TCP: composite Simpson over alpha directly (no recurrence,
/// no z-grid), with the same truncation at alpha > 0.
fn population_tcp_reference(
    doses: &[f64],
    ln_n: &[f64],
    alpha: f64,
    sd: f64,
    beta_per_fraction: f64,
) -> f64 {
    let steps = 20_000;
    let lo = (alpha - 10.0 * sd).max(0.0);
    let hi = alpha + 10.0 * sd;
    let h = (hi - lo) / steps as f64;
    let (mut num, mut den) = (0.0, 0.0);
    for k in 0..=steps {
        let a = lo + k as f64 * h;
        let wk = if k == 0 || k == steps {
            1.0
        } else if k % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let pdf = (-0.5 * ((a - alpha) / sd).powi(2)).exp();
        let survivors: f64 = doses
            .iter()
            .zip(ln_n)
            .map(|(d, l)| (l - a * d - beta_per_fraction * d * d).exp())
            .sum();
        num += wk * pdf * (-survivors).exp();
        den += wk * pdf;
    }
    num / den
}

#[test]
fn population_tcp_matches_independent_integration() {
    let (alpha, sd) = (0.35, 0.08); // Webb & Nahum 1993
    let lq = LqParams::new(alpha, alpha / 10.0).unwrap();
    let doses = [55.0, 60.0, 62.0, 66.0, 70.0];
    let model = PoissonTcp::uniform(5, 30, lq, 1e7, 0.2).unwrap();
    let pop = PopulationTcp::new(model, sd / alpha, PopulationQuadrature::default()).unwrap();
    let ln_n = [(1e7f64 * 0.2).ln(); 5];
    for scale in [0.8, 0.9, 1.0, 1.1, 1.25] {
        let d: Vec<f64> = doses.iter().map(|x| x * scale).collect();
        let got = pop.tcp(&d).unwrap();
        let reference = population_tcp_reference(&d, &ln_n, alpha, sd, alpha / 10.0 / 30.0);
        assert!(
            (got - reference).abs() < 1e-6,
            "scale {scale}: {got} vs {reference}"
        );
    }
    // No spread: the population TCP is the Poisson TCP.
    let model = PoissonTcp::uniform(5, 30, lq, 1e7, 0.2).unwrap();
    let exact = model.tcp(&doses).unwrap();
    let pop0 = PopulationTcp::new(model, 0.0, PopulationQuadrature::default()).unwrap();
    assert_abs_diff_eq!(pop0.tcp(&doses).unwrap(), exact, epsilon = 1e-15);
    // The population curve is shallower than the individual one at the mean alpha:
    // higher where the individual TCP is low, lower where it is high.
    let model = PoissonTcp::uniform(5, 30, lq, 1e7, 0.2).unwrap();
    assert!(pop.tcp(&[30.0; 5]).unwrap() > model.tcp(&[30.0; 5]).unwrap());
    assert!(pop.tcp(&[50.0; 5]).unwrap() < model.tcp(&[50.0; 5]).unwrap());
}

#[test]
fn population_tcp_from_library_webb_nahum() {
    let p = ParameterLibrary::builtin()
        .tcp_population("webb_nahum_1993_tumour")
        .unwrap();
    assert_abs_diff_eq!(p.alpha_mean_per_gy(), 0.35, epsilon = 0.0);
    assert_abs_diff_eq!(p.alpha_sd_per_gy(), 0.08, epsilon = 0.0);
    let pop = p.uniform_model(1000, 35, 0.1).unwrap(); // 100 cm^3 tumour
    let t60 = pop.tcp(&vec![60.0; 1000]).unwrap();
    let t70 = pop.tcp(&vec![70.0; 1000]).unwrap();
    let t80 = pop.tcp(&vec![80.0; 1000]).unwrap();
    assert!(0.0 < t60 && t60 < t70 && t70 < t80 && t80 < 1.0);
}

// ---------------------------------------------------------------------------
// Invalid input: named errors, no panic
// ---------------------------------------------------------------------------

#[test]
fn invalid_parameters_are_named() {
    let name_of = |e: Error| match e {
        Error::InvalidParameter { name, .. } => name,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(name_of(bed(70.0, 35, 0.0).unwrap_err()), "alpha_beta_gy");
    assert_eq!(name_of(bed(70.0, 35, -3.0).unwrap_err()), "alpha_beta_gy");
    assert_eq!(name_of(bed(70.0, 0, 3.0).unwrap_err()), "fractions");
    assert_eq!(name_of(bed(-1.0, 35, 3.0).unwrap_err()), "total_dose_gy");
    assert_eq!(
        name_of(bed(f64::NAN, 35, 3.0).unwrap_err()),
        "total_dose_gy"
    );
    assert_eq!(name_of(Lkb::new(40.0, 0.0, 1.0).unwrap_err()), "m");
    assert_eq!(name_of(Lkb::new(40.0, -0.1, 1.0).unwrap_err()), "m");
    assert_eq!(name_of(Lkb::new(0.0, 0.1, 1.0).unwrap_err()), "td50_gy");
    assert_eq!(name_of(Lkb::new(40.0, 0.1, 0.0).unwrap_err()), "n");
    assert_eq!(
        name_of(LqParams::new(0.0, 0.03).unwrap_err()),
        "alpha_per_gy"
    );
    assert_eq!(
        name_of(LqParams::new(0.3, f64::NAN).unwrap_err()),
        "beta_per_gy2"
    );
    assert_eq!(name_of(Geud::new(f64::INFINITY).unwrap_err()), "a");
    assert_eq!(
        name_of(OerModel::new(0.5, 3.0, 3.0).unwrap_err()),
        "m_alpha"
    );
    assert_eq!(name_of(OerModel::new(2.5, 3.0, 0.0).unwrap_err()), "k_mmhg");
    assert_eq!(
        name_of(OerModel::carlson_2006().oer_alpha(-1.0).unwrap_err()),
        "po2_mmhg"
    );
    assert_eq!(
        name_of(RelativeSeriality::new(50.0, 1.0, 0.0).unwrap_err()),
        "s"
    );
    assert_eq!(
        name_of(LogitNtcp::new(50.0, 0.0, 1.0).unwrap_err()),
        "gamma50"
    );
    assert_eq!(
        name_of(Repopulation::tpot(21.0, 0.35, 0.0).unwrap_err()),
        "tpot_days"
    );
    assert_eq!(
        name_of(AlphaBeta::new(f64::NAN).unwrap_err()),
        "alpha_beta_gy"
    );
    assert_eq!(
        name_of(Fractionation::new(60.0, 0).unwrap_err()),
        "fractions"
    );
    let lq = LqParams::new(0.3, 0.03).unwrap();
    assert_eq!(
        name_of(PoissonTcp::uniform(10, 0, lq, 1e7, 0.1).unwrap_err()),
        "fractions"
    );
    assert_eq!(
        name_of(PoissonTcp::uniform(10, 30, lq, 1e7, 0.0).unwrap_err()),
        "voxel_volume_cm3"
    );
    let model = PoissonTcp::uniform(10, 30, lq, 1e7, 0.1).unwrap();
    let q = PopulationQuadrature {
        nodes: 10,
        z_max: 8.0,
    };
    assert_eq!(
        name_of(PopulationTcp::new(model, 0.2, q).unwrap_err()),
        "nodes"
    );
    // The message names the parameter too.
    let msg = bed(70.0, 35, 0.0).unwrap_err().to_string();
    assert!(msg.contains("alpha_beta_gy"), "{msg}");
}

#[test]
fn invalid_voxel_inputs_are_located() {
    let geud = Geud::new(-10.0).unwrap();
    let lkb = Lkb::new(40.0, 0.4, 1.0).unwrap();
    let mut g = [0.0; 3];
    // Negative or NaN dose: the first bad voxel is named.
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let d = [60.0, bad, 70.0];
        let e = geud.value(&d, Weights::Uniform).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidVoxelValue {
                    quantity: "dose_gy",
                    index: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(lkb.ntcp_and_gradient(&d, Weights::Uniform, &mut g).is_err());
    }
    // The lowest bad index wins even across parallel chunks.
    let mut big = vec![50.0; 20_000];
    big[15_000] = -2.0;
    big[9_000] = f64::NAN;
    assert!(matches!(
        geud.value(&big, Weights::Uniform),
        Err(Error::InvalidVoxelValue { index: 9_000, .. })
    ));
    // Weights.
    assert!(matches!(
        geud.value(&[60.0, 70.0], &[0.0, 0.0]),
        Err(Error::NonPositiveTotal {
            name: "weights",
            ..
        })
    ));
    assert!(matches!(
        geud.value(&[60.0, 70.0], &[1.0, -1.0]),
        Err(Error::InvalidVoxelValue {
            quantity: "weight",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        geud.value(&[60.0, 70.0], &[1.0]),
        Err(Error::LengthMismatch {
            name: "weights",
            ..
        })
    ));
    assert!(matches!(
        geud.value_and_gradient(&[60.0, 70.0], Weights::Uniform, &mut g),
        Err(Error::LengthMismatch {
            name: "grad_out",
            ..
        })
    ));
    assert!(matches!(
        geud.value(&[], Weights::Uniform),
        Err(Error::Empty { .. })
    ));
    // TCP doses.
    let lq = LqParams::new(0.3, 0.03).unwrap();
    let tcp = PoissonTcp::uniform(3, 30, lq, 1e7, 0.1).unwrap();
    assert!(matches!(
        tcp.log_tcp(&[60.0, 60.0, -0.1]),
        Err(Error::InvalidVoxelValue {
            quantity: "dose_gy",
            index: 2,
            ..
        })
    ));
    assert!(matches!(
        tcp.log_tcp(&[60.0, 60.0]),
        Err(Error::LengthMismatch {
            name: "doses_gy",
            ..
        })
    ));
    // Per-voxel maps.
    let alpha = [0.3, 0.0, 0.3];
    let e = PoissonTcp::new(
        3,
        30,
        TcpVoxelData {
            clonogen_density_per_cm3: 1e7.into(),
            voxel_volume_cm3: 0.1.into(),
            alpha_per_gy: VoxelValues::PerVoxel(&alpha),
            beta_per_gy2: 0.03.into(),
        },
    )
    .unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidVoxelValue {
            quantity: "alpha_per_gy",
            index: 1,
            ..
        }
    ));
    let mut out = [0.0; 3];
    assert!(matches!(
        bed_map(
            &[1.0, 2.0, 3.0],
            5,
            VoxelValues::PerVoxel(&[3.0, -1.0, 3.0]),
            &mut out
        ),
        Err(Error::InvalidVoxelValue {
            quantity: "alpha_beta_gy",
            index: 1,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// Parameter library
// ---------------------------------------------------------------------------

#[test]
fn library_holds_the_reference_sets() {
    let lib = ParameterLibrary::builtin();
    // radiobiology.csv parameters.
    let p = lib.lkb("quantec_parotid_xerostomia").unwrap();
    assert_eq!((p.td50_gy(), p.m(), p.n()), (39.9, 0.40, 1.0));
    let c = lib.lkb("burman_spinal_cord_myelitis").unwrap();
    assert_eq!((c.td50_gy(), c.m(), c.n()), (66.5, 0.175, 0.05));
    assert_eq!(
        lib.oer("carlson_2006_oer").unwrap(),
        OerModel::carlson_2006()
    );
    assert!(lib.lkb("burman_larynx_cartilage_necrosis").is_ok());
    assert_abs_diff_eq!(
        lib.alpha_beta("brenner_hall_1999_prostate_alpha_beta")
            .unwrap()
            .gy(),
        1.5,
        epsilon = 0.0
    );
    // Every set has a source and valid parameters.
    for s in lib.sets() {
        assert!(!s.source.is_empty() && !s.tissue.is_empty(), "{}", s.name);
    }
    assert!(matches!(
        lib.lkb("carlson_2006_oer"),
        Err(Error::WrongModel {
            expected: "lkb",
            found: "oer",
            ..
        })
    ));
    assert!(matches!(
        lib.lkb("nope"),
        Err(Error::UnknownParameterSet(_))
    ));
}

#[test]
fn library_round_trips_through_json_and_toml() {
    let lib = ParameterLibrary::builtin();
    let json = serde_json::to_string_pretty(&lib).unwrap();
    let back: ParameterLibrary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, lib);
    let toml_text = toml::to_string(&lib).unwrap();
    let back: ParameterLibrary = toml::from_str(&toml_text).unwrap();
    assert_eq!(back, lib);
}

#[test]
fn library_can_be_extended_from_a_file() {
    let user = r#"
        [[sets]]
        name = "my_cord"
        tissue = "spinal cord"
        endpoint = "myelopathy"
        source = "a local fit"
        [sets.parameters]
        model = "lkb"
        td50_gy = 66.5
        m = 0.175
        n = 0.05

        [[sets]]
        name = "my_logit"
        tissue = "parotid"
        endpoint = "xerostomia"
        source = "a local fit"
        [sets.parameters]
        model = "logit"
        td50_gy = 40
        gamma50 = 1.5
        a = 1
    "#;
    let extra: ParameterLibrary = toml::from_str(user).unwrap();
    let mut lib = ParameterLibrary::builtin();
    let n = lib.sets().len();
    lib.extend_from(extra.clone(), false).unwrap();
    assert_eq!(lib.sets().len(), n + 2);
    assert_abs_diff_eq!(lib.logit("my_logit").unwrap().gamma50(), 1.5, epsilon = 0.0);
    // Adding the same names again is refused unless replacing.
    assert!(matches!(
        lib.extend_from(extra.clone(), false),
        Err(Error::DuplicateParameterSet(_))
    ));
    lib.extend_from(extra, true).unwrap();
    assert_eq!(lib.sets().len(), n + 2);
    // Invalid values are caught while reading, with the parameter's name.
    let bad = user.replace("m = 0.175", "m = -0.175");
    let err = toml::from_str::<ParameterLibrary>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`m`"), "{err}");
    let bad_json = r#"{"sets":[{"name":"x","tissue":"t","endpoint":"e","source":"s",
        "parameters":{"model":"lq","alpha_per_gy":0.3,"beta_per_gy2":-1}}]}"#;
    let err = serde_json::from_str::<ParameterLibrary>(bad_json)
        .unwrap_err()
        .to_string();
    assert!(err.contains("beta_per_gy2"), "{err}");
    // Duplicate names inside one file are refused.
    let dup = format!(
        "{user}\n{}",
        user.split("[[sets]]")
            .nth(1)
            .map(|s| format!("[[sets]]{s}"))
            .unwrap()
    );
    assert!(toml::from_str::<ParameterLibrary>(&dup).is_err());
    // A hand-built set.
    let mut lib = ParameterLibrary::new();
    lib.insert(ParameterSet {
        name: "x".into(),
        tissue: "t".into(),
        endpoint: "e".into(),
        source: "s".into(),
        notes: None,
        parameters: ModelParameters::Lq(LqParams::new(0.3, 0.03).unwrap()),
    })
    .unwrap();
    assert_abs_diff_eq!(lib.alpha_beta("x").unwrap().gy(), 10.0, epsilon = 1e-12);
}

#[test]
fn parameter_types_round_trip_through_serde() {
    let fx = Fractionation::new(70.0, 35)
        .unwrap()
        .with_overall_time_days(46.0)
        .unwrap();
    let back: Fractionation = serde_json::from_str(&serde_json::to_string(&fx).unwrap()).unwrap();
    assert_eq!(back, fx);
    let r = Repopulation::tpot(21.0, 0.35, 3.0).unwrap();
    let back: Repopulation = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    assert!(
        serde_json::from_str::<Fractionation>(r#"{"total_dose_gy":70,"fractions":0}"#).is_err()
    );
    assert!(serde_json::from_str::<AlphaBeta>("0").is_err());
    let sched = Schedule::five_per_week(&[("base", 25), ("boost", 10)]).unwrap();
    let back: Schedule = serde_json::from_str(&serde_json::to_string(&sched).unwrap()).unwrap();
    assert_eq!(back, sched);
    let g = Gard::from_rsi(0.4).unwrap();
    let back: Gard = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    assert_eq!(back, g);
}

/// The bad-input paths of the map, schedule, TCP and repopulation entry points:
/// each returns the named error, none panics.
#[test]
fn more_invalid_inputs_are_named() {
    let param = |r: Result<f64, Error>| match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("expected InvalidParameter, got {other:?}"),
    };
    let voxel = |e: Error| match e {
        Error::InvalidVoxelValue {
            quantity, index, ..
        } => (quantity, index),
        other => panic!("expected InvalidVoxelValue, got {other:?}"),
    };
    let length = |e: Error| match e {
        Error::LengthMismatch { name, .. } => name,
        other => panic!("expected LengthMismatch, got {other:?}"),
    };
    let lq = LqParams::new(0.3, 0.03).unwrap();
    let mut out = [0.0; 3];
    let mut short = [0.0; 2];

    // Survival and GARD maps: bad dose located, bad alpha map located, wrong output length.
    let e = survival_map(
        &[60.0, f64::NAN, 1.0],
        30,
        0.3.into(),
        0.03.into(),
        &mut out,
    );
    assert_eq!(voxel(e.unwrap_err()), ("dose_gy", 1));
    let e = survival_map(
        &[1.0; 3],
        30,
        (&[0.3, 0.3, -0.3]).into(),
        0.03.into(),
        &mut out,
    );
    assert_eq!(voxel(e.unwrap_err()), ("alpha_per_gy", 2));
    let e = survival_map(&[1.0; 3], 30, 0.3.into(), 0.03.into(), &mut short);
    assert_eq!(length(e.unwrap_err()), "out");
    let g = Gard::from_rsi(0.4).unwrap();
    assert_eq!(
        voxel(g.gard_map(&[1.0, 2.0, -3.0], 30, &mut out).unwrap_err()),
        ("dose_gy", 2)
    );
    assert_eq!(
        length(g.gard_map(&[1.0; 3], 30, &mut short).unwrap_err()),
        "out"
    );
    assert_eq!(
        param(g.gard_map(&[1.0; 3], 0, &mut out).map(|()| 0.0)),
        "fractions"
    );
    assert_eq!(param(g.total_dose_for(-1.0, 30)), "log_cell_kill");

    // EQD2 map with derivative, EQDx, iso-effect and log cell kill.
    let e = eqd2_map_with_derivative(&[1.0; 3], 5, 3.0.into(), &mut out, &mut short);
    assert_eq!(length(e.unwrap_err()), "derivative_out");
    let mut der = [0.0; 3];
    let e = eqd2_map_with_derivative(
        &[1.0, f64::INFINITY, 1.0],
        5,
        3.0.into(),
        &mut out,
        &mut der,
    );
    assert_eq!(voxel(e.unwrap_err()), ("dose_gy", 1));
    assert_eq!(
        param(dosepaint_radiobio::eqdx(60.0, 30, 3.0, 0.0)),
        "reference_dose_per_fraction_gy"
    );
    assert_eq!(
        param(dose_for_log_cell_kill(&lq, -1.0, 30)),
        "log_cell_kill"
    );
    assert_eq!(param(dose_for_log_cell_kill(&lq, 10.0, 0)), "fractions");
    let ab = AlphaBeta::new(10.0).unwrap();
    assert_eq!(param(isoeffective_total_dose(-1.0, 5, ab)), "bed_gy");
    assert_eq!(param(isoeffective_total_dose(f64::NAN, 5, ab)), "bed_gy");
    assert_eq!(param(isoeffective_total_dose(80.0, 0, ab)), "fractions");
    assert_eq!(
        param(Fractionation::from_dose_per_fraction(-2.0, 30).map(|f| f.total_dose_gy())),
        "dose_per_fraction_gy"
    );
    let fx = Fractionation::new(60.0, 30).unwrap();
    assert_eq!(
        param(fx.with_overall_time_days(-1.0).map(|f| f.total_dose_gy())),
        "overall_time_days"
    );

    // Repopulation and iso-effect with time.
    assert_eq!(
        param(Repopulation::dose_per_day(-1.0, 0.7).map(|r| r.bed_per_day_gy())),
        "kickoff_days"
    );
    assert_eq!(
        param(Repopulation::from_eqd2_per_day(28.0, -0.6, ab).map(|r| r.bed_per_day_gy())),
        "eqd2_per_day_gy"
    );
    let r = Repopulation::tpot(21.0, 0.35, 3.0).unwrap();
    assert_eq!(param(r.try_bed_loss_gy(f64::NAN)), "overall_time_days");
    assert_eq!(
        param(isoeffective_total_dose_with_time(-100.0, 30, 39.0, ab, &r)),
        "target_effective_bed_gy"
    );
    assert_eq!(
        param(isoeffective_total_dose_with_time(
            f64::NAN,
            30,
            39.0,
            ab,
            &r
        )),
        "target_effective_bed_gy"
    );

    // Schedules and the boost comparison.
    let seq = Schedule::five_per_week(&[("base", 25), ("boost", 10)]).unwrap();
    assert_eq!(
        length(seq.evaluate("x", &[50.0], ab, &r).unwrap_err()),
        "phase_doses_gy"
    );
    assert!(matches!(
        seq.evaluate("x", &[50.0, -1.0], ab, &r),
        Err(Error::InvalidParameter {
            name: "phase_doses_gy",
            ..
        })
    ));
    assert!(matches!(
        Schedule::new(vec![]),
        Err(Error::Empty { name: "phases" })
    ));
    let plan = BoostPlan {
        elective_dose_gy: 50.0,
        base_fractions: 25,
        boost_dose_gy: 20.0,
        boost_fractions: 10,
        sib_fractions: 0,
    };
    assert!(matches!(
        compare_sequential_and_sib(&plan, ab, &r),
        Err(Error::InvalidParameter {
            name: "sib_fractions",
            ..
        })
    ));
    let plan = BoostPlan {
        elective_dose_gy: -50.0,
        sib_fractions: 30,
        ..plan
    };
    assert!(matches!(
        compare_sequential_and_sib(&plan, ab, &r),
        Err(Error::InvalidParameter {
            name: "elective_dose_gy",
            ..
        })
    ));

    // TCP models: no voxel, clonogen count overflowing, bad gradient buffer,
    // impossible population parameters.
    assert!(matches!(
        PoissonTcp::uniform(0, 30, lq, 1e7, 0.1),
        Err(Error::Empty { name: "voxels" })
    ));
    let huge = [1.0, 1e300];
    let e = PoissonTcp::new(
        2,
        30,
        TcpVoxelData {
            clonogen_density_per_cm3: VoxelValues::PerVoxel(&huge),
            voxel_volume_cm3: 1e10.into(),
            alpha_per_gy: 0.3.into(),
            beta_per_gy2: 0.03.into(),
        },
    )
    .unwrap_err();
    assert_eq!(voxel(e).1, 1);
    let e = PoissonTcp::new(
        2,
        30,
        TcpVoxelData {
            clonogen_density_per_cm3: VoxelValues::PerVoxel(&[1e7, f64::NAN]),
            voxel_volume_cm3: 0.1.into(),
            alpha_per_gy: 0.3.into(),
            beta_per_gy2: 0.03.into(),
        },
    )
    .unwrap_err();
    assert_eq!(voxel(e), ("clonogen_density_per_cm3", 1));
    let tcp = PoissonTcp::uniform(3, 30, lq, 1e7, 0.1).unwrap();
    assert_eq!(
        length(
            tcp.log_tcp_and_gradient(&[60.0; 3], &mut short)
                .unwrap_err()
        ),
        "grad_out"
    );
    let q = PopulationQuadrature::default();
    let pop =
        |sd: f64, q: PopulationQuadrature| PopulationTcp::new(tcp.clone(), sd, q).map(|_| 0.0);
    assert_eq!(param(pop(-0.1, q)), "relative_sd");
    assert_eq!(param(pop(f64::NAN, q)), "relative_sd");
    assert_eq!(
        param(pop(
            0.2,
            PopulationQuadrature {
                nodes: 2,
                z_max: 8.0
            }
        )),
        "nodes"
    );
    assert_eq!(
        param(pop(
            0.2,
            PopulationQuadrature {
                nodes: 241,
                z_max: 0.0
            }
        )),
        "z_max"
    );
    let p = PopulationTcp::new(tcp.clone(), 0.2, q).unwrap();
    assert_eq!(
        voxel(p.tcp(&[60.0, -1.0, 60.0]).unwrap_err()),
        ("dose_gy", 1)
    );
    assert_eq!(
        length(p.log_tcp_and_gradient(&[60.0; 3], &mut short).unwrap_err()),
        "grad_out"
    );
    let tp = |a: f64, sd: f64, ab: f64, rho: f64| {
        dosepaint_radiobio::TcpPopulationParams::new(a, sd, ab, rho).map(|p| p.alpha_mean_per_gy())
    };
    assert_eq!(param(tp(0.0, 0.08, 10.0, 1e7)), "alpha_mean_per_gy");
    assert_eq!(param(tp(0.35, -0.08, 10.0, 1e7)), "alpha_sd_per_gy");
    assert_eq!(param(tp(0.35, 0.08, f64::NAN, 1e7)), "alpha_beta_gy");
    assert_eq!(param(tp(0.35, 0.08, 10.0, 0.0)), "clonogen_density_per_cm3");

    // NTCP models other than LKB: bad dose, bad weight, impossible parameters.
    let rs = RelativeSeriality::new(52.2, 1.28, 1.0).unwrap();
    assert_eq!(
        voxel(rs.ntcp(&[30.0, f64::NAN], Weights::Uniform).unwrap_err()),
        ("dose_gy", 1)
    );
    assert_eq!(
        voxel(rs.ntcp(&[30.0, 40.0], &[1.0, -1.0]).unwrap_err()),
        ("weight", 1)
    );
    let logit = LogitNtcp::new(46.0, 2.0, 1.0).unwrap();
    assert_eq!(
        voxel(logit.ntcp(&[-30.0, 40.0], Weights::Uniform).unwrap_err()),
        ("dose_gy", 0)
    );
    assert_eq!(param(LogitNtcp::from_k(46.0, 0.0, 1.0).map(|m| m.a())), "k");
    assert_eq!(
        param(LogitNtcp::new(46.0, 2.0, f64::NAN).map(|m| m.a())),
        "a"
    );
    assert_eq!(
        param(RelativeSeriality::new(-1.0, 1.0, 1.0).map(|m| m.s())),
        "d50_gy"
    );

    // Oxygen maps: output buffers of the wrong length.
    let oer = OerModel::carlson_2006();
    assert_eq!(
        length(
            oer.hypoxic_maps(&lq, &[1.0; 3], &mut short, &mut out)
                .unwrap_err()
        ),
        "alpha_out"
    );
    assert_eq!(
        length(
            oer.hypoxic_maps(&lq, &[1.0; 3], &mut out.clone(), &mut short)
                .unwrap_err()
        ),
        "beta_out"
    );
    assert_eq!(
        param(OerModel::single(f64::NAN, 3.0).map(|m| m.m_alpha())),
        "m_alpha"
    );
}
