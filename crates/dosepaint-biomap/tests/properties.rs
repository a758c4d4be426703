//! Property tests: monotone mappings, floors and caps that always hold (and
//! are counted), and adaptive re-prescription that returns the original plan
//! when nothing changed.

mod common;

use common::row_inputs;
use dosepaint_biomap::{
    AdcUnit, AdjustmentKind, AlphaBetaMap, Delivered, DensitySpec, DoseMapping, ExcessPolicy,
    ImageSource, IsoEffectSpec, Level, LinearSpec, MappingSpec, Normalization, OxygenSpec,
    PiecewiseSpec, Po2Model, SigmoidSpec, linear_dose, piecewise_dose, represcribe, sigmoid_dose,
};
use dosepaint_core::{Grid, Prescription, Provenance, Volume};
use dosepaint_radiobio::{LqParams, OerModel};
use proptest::prelude::*;

fn sorted(mut v: Vec<f32>) -> Vec<f32> {
    v.sort_by(f32::total_cmp);
    v
}

fn non_decreasing(d: &[f32]) -> bool {
    d.windows(2).all(|w| w[0] <= w[1])
}

fn non_increasing(d: &[f32]) -> bool {
    d.windows(2).all(|w| w[0] >= w[1])
}

fn hypoxia_spec(floor: Option<f64>, cap: Option<f64>) -> MappingSpec {
    let mut s = IsoEffectSpec::new(LqParams::new(0.3, 0.03).unwrap(), 66.0);
    s.oxygen = Some(OxygenSpec {
        image: ImageSource::new("x"),
        po2: Po2Model::Binding {
            uptake_oxic: 1.0,
            uptake_anoxic: 3.0,
            k_mmhg: 2.0,
            max_po2_mmhg: 80.0,
        },
        oer: OerModel::carlson_2006(),
        modifier: None,
    });
    s.floor_gy = floor;
    s.cap_gy = cap;
    MappingSpec::Hypoxia(s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bentzen's linear map rises with the image value when D_high >= D_low
    /// and stays within [D_low, D_high].
    #[test]
    fn linear_is_monotone_and_clipped(
        a in -5.0f64..5.0, b in -5.0f64..5.0,
        lo in 0.1f64..3.0, width in 0.01f64..3.0,
        d_low in 50.0f64..70.0, extra in 0.0f64..30.0,
    ) {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        let hi = lo + width;
        let (dx, dy) = (
            linear_dose(x, lo, hi, d_low, d_low + extra),
            linear_dose(y, lo, hi, d_low, d_low + extra),
        );
        prop_assert!(dx <= dy + 1e-12);
        prop_assert!(dx >= d_low - 1e-12 && dy <= d_low + extra + 1e-12);
    }

    /// A sigmoid rises for w > 0 and falls for w < 0.
    #[test]
    fn sigmoid_is_monotone(a in -5.0f64..5.0, b in -5.0f64..5.0, mid in -2.0f64..2.0,
                           w in 0.05f64..2.0, d_low in 50.0f64..70.0, extra in 0.0f64..30.0) {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        let d_high = d_low + extra;
        prop_assert!(sigmoid_dose(x, mid, w, d_low, d_high) <= sigmoid_dose(y, mid, w, d_low, d_high) + 1e-12);
        prop_assert!(sigmoid_dose(x, mid, -w, d_low, d_high) + 1e-12 >= sigmoid_dose(y, mid, -w, d_low, d_high));
    }

    /// A table with non-decreasing doses gives a non-decreasing map.
    #[test]
    fn piecewise_with_rising_doses_is_monotone(
        steps in prop::collection::vec((0.01f64..1.0, 0.0f64..10.0), 2..6),
        a in -1.0f64..8.0, b in -1.0f64..8.0,
    ) {
        let mut points = Vec::new();
        let (mut x, mut d) = (0.0, 60.0);
        for (dx, dd) in steps {
            x += dx;
            d += dd;
            points.push([x, d]);
        }
        let (p, q) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(piecewise_dose(p, &points) <= piecewise_dose(q, &points) + 1e-9);
    }

    /// Through the whole mapping machinery: sorted images give sorted doses,
    /// and the floor and cap hold in every voxel, with exactly the clamped
    /// voxels counted in the report.
    #[test]
    fn number_mappings_are_monotone_and_respect_limits(
        values in prop::collection::vec(0.0f32..4.0, 2..40),
        floor in 60.0f64..72.0, cap in 74.0f64..90.0,
    ) {
        let values = sorted(values);
        let inputs = row_inputs(&[("x", &values)], None, 35);
        let image = ImageSource::new("x");
        let specs = [
            MappingSpec::Linear(LinearSpec::new(image.clone(), 1.0, 3.0, 64.0, 86.0)),
            MappingSpec::Sigmoid(SigmoidSpec {
                image: image.clone(), i_50: Level::Value(2.0), width: 0.3,
                d_low_gy: 62.0, d_high_gy: 88.0, base_dose_gy: None, floor_gy: None, cap_gy: None,
            }),
            MappingSpec::Piecewise(PiecewiseSpec {
                image, points: vec![[0.5, 60.0], [1.5, 75.0], [3.5, 92.0]],
                base_dose_gy: None, floor_gy: None, cap_gy: None,
            }),
        ];
        for spec in specs {
            let raw = spec.map(&inputs).unwrap();
            prop_assert!(non_decreasing(raw.target_gy().as_slice()));
            let limited = match spec {
                MappingSpec::Linear(s) => MappingSpec::Linear(LinearSpec { floor_gy: Some(floor), cap_gy: Some(cap), ..s }),
                MappingSpec::Sigmoid(s) => MappingSpec::Sigmoid(SigmoidSpec { floor_gy: Some(floor), cap_gy: Some(cap), ..s }),
                MappingSpec::Piecewise(s) => MappingSpec::Piecewise(PiecewiseSpec { floor_gy: Some(floor), cap_gy: Some(cap), ..s }),
                _ => unreachable!(),
            };
            let out = limited.map_with_report(&inputs).unwrap();
            let d = out.prescription.target_gy().as_slice();
            prop_assert!(non_decreasing(d));
            let (f32_floor, f32_cap) = (floor as f32, cap as f32);
            prop_assert!(d.iter().all(|&x| x >= f32_floor && x <= f32_cap));
            let raw = raw.target_gy().as_slice();
            let below = raw.iter().filter(|&&x| f64::from(x) < floor).count();
            let above = raw.iter().filter(|&&x| f64::from(x) > cap).count();
            // f32 storage of the raw map can put a value within 1 ulp of a limit on
            // the other side; allow that.
            let near = raw.iter().filter(|&&x| (f64::from(x) - floor).abs() < 1e-5 || (f64::from(x) - cap).abs() < 1e-5).count();
            let floored = out.report.count(AdjustmentKind::RaisedToFloor);
            let capped = out.report.count(AdjustmentKind::LoweredToCap);
            prop_assert!(floored.abs_diff(below) <= near && capped.abs_diff(above) <= near);
        }
    }

    /// More hypoxia tracer uptake means lower pO2, a higher OER and a higher
    /// iso-effect dose; floors and caps hold.
    #[test]
    fn hypoxia_dose_rises_with_uptake(
        values in prop::collection::vec(0.5f32..3.5, 2..30),
        floor in 55.0f64..66.0, cap in 90.0f64..160.0,
    ) {
        let values = sorted(values);
        let inputs = row_inputs(&[("x", &values)], None, 33);
        let d = hypoxia_spec(None, None).map(&inputs).unwrap();
        prop_assert!(non_decreasing(d.target_gy().as_slice()));
        let d = hypoxia_spec(Some(floor), Some(cap)).map(&inputs).unwrap();
        let (f, c) = (floor as f32, cap as f32);
        prop_assert!(d.target_gy().as_slice().iter().all(|&x| x >= f && x <= c));
    }

    /// Higher ADC means fewer clonogens and less dose.
    #[test]
    fn cellularity_dose_falls_with_adc(values in prop::collection::vec(300.0f32..3500.0, 2..30)) {
        let values = sorted(values);
        let inputs = row_inputs(&[("adc", &values)], None, 35);
        let mut s = IsoEffectSpec::new(LqParams::new(0.3, 0.1).unwrap(), 70.0);
        s.density = Some(DensitySpec {
            image: ImageSource::new("adc").normalized(Normalization::Adc { unit: AdcUnit::Micro }),
            adc_water_mm2_s: 3.0e-3,
            adc_min_mm2_s: Level::Value(0.3e-3),
            rho_max_per_cm3: 1e7,
            rho_min_per_cm3: 1e3,
            reference_adc_mm2_s: Level::Value(1.0e-3),
        });
        let d = MappingSpec::Cellularity(s).map(&inputs).unwrap();
        prop_assert!(non_increasing(d.target_gy().as_slice()));
    }

    /// Adaptive re-prescription of an unchanged intent with the dose delivered
    /// exactly as planned returns the original dose per fraction.
    #[test]
    fn adaptive_with_unchanged_plan_returns_the_original_fractions(
        doses in prop::collection::vec(prop_oneof![Just(0.0f32), 40.0f32..90.0], 1..20),
        n in 2u32..40, k_frac in 0.0f64..1.0, ab in 1.0f64..20.0,
    ) {
        prop_assume!(doses.iter().any(|&d| d > 0.0));
        let k = 1 + ((f64::from(n - 1) * k_frac) as u32).min(n - 2);
        let g = Grid::new([doses.len(), 1, 1], [2.0; 3], [0.0; 3]).unwrap();
        let intent = Prescription::new(
            Volume::from_vec(g.clone(), doses.clone()).unwrap(), n, Provenance::default()).unwrap();
        let delivered = Delivered::Physical {
            dose_gy: Volume::from_vec(g, doses.iter().map(|&d| d * k as f32 / n as f32).collect()).unwrap(),
            fractions: k,
        };
        let a = represcribe(&intent, &delivered, &AlphaBetaMap::Uniform(ab), ExcessPolicy::Refuse).unwrap();
        prop_assert_eq!(a.remaining.fractions(), n - k);
        for (v, &d) in doses.iter().enumerate() {
            let want = f64::from(d) / f64::from(n);
            let got = f64::from(a.dose_per_fraction_gy.as_slice()[v]);
            prop_assert!((got - want).abs() <= 2e-5 * want.max(1.0), "voxel {}: {} vs {}", v, got, want);
        }
        prop_assert!(a.exceeded.is_empty());
    }
}
