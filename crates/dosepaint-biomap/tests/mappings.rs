//! Mappings against the formulas and published figures of
//! `shared/reference/dose_painting.md` and `shared/reference/radiobiology.csv`,
//! radiobiological iso-effect checks with `dosepaint-radiobio`, combinations,
//! adaptive re-prescription and error reporting.

// Exact float comparisons below are on copied values or exactly representable
// doses (70, 77.5, 0), never on the results of inexact arithmetic.
#![allow(clippy::float_cmp)]

mod common;

use common::{grid, head_and_neck, row_inputs, sphere, structure, structure_from};
use dosepaint_biomap::{
    AdcUnit, AdjustmentKind, AlphaBetaMap, Conserve, ContourLevelSpec, ContourSpec, Delivered,
    DensitySpec, DoseMapping, Error, ExcessPolicy, HypoxicModifier, ImageSource, IsoEffectSpec,
    Level, LinearSpec, MappingInputs, MappingSpec, MaxOf, MaxSpec, Normalization, OutsideSource,
    OxygenSpec, PatientRadiosensitivity, PatientSpec, PiecewiseSpec, Po2Model, ProliferationSpec,
    RedistributeSpec, ReferenceStatistic, Rescale, RiskComponent, RiskMapSpec, TargetStatistic,
    ThresholdRule, UniformSpec, VoxelFn, WeightedComponent, WeightedSpec, adc_to_mm2_per_s,
    clonogen_density, prescription_bed, prescription_eqd2, region_stats, represcribe, sib_doses,
    suv_max, suv_peak, tumour_to_background, z_score,
};
use dosepaint_core::{AffineTransform, Prescription, Provenance, Structure, StructureRole, Volume};
use dosepaint_radiobio::{LqParams, OerModel, Repopulation};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn lq() -> LqParams {
    LqParams::new(0.35, 0.035).unwrap()
}

/// FMISO as tumour-to-blood ratio.
fn fmiso_tbr() -> ImageSource {
    ImageSource::new("fmiso").ratio_to("blood")
}

/// The linear map used throughout: `image` 1.2 -> 70 Gy, 2.0 -> 84 Gy, with
/// 70 Gy to the rest of the base region.
fn linear_70_84(image: ImageSource) -> MappingSpec {
    MappingSpec::Linear(LinearSpec::new(image, 1.2, 2.0, 70.0, 84.0).with_base_dose(70.0))
}

/// Dose painting by contours with one level `name` (where `rule` holds on
/// `image`) at `dose_gy` over a 70 Gy target.
fn one_level(name: &str, image: &str, rule: ThresholdRule, dose_gy: f64) -> MappingSpec {
    MappingSpec::Contours(ContourSpec::new(
        70.0,
        vec![ContourLevelSpec::new(
            name,
            ImageSource::new(image),
            rule,
            dose_gy,
        )],
    ))
}

/// The linear ADC -> clonogen density model of the "adc" image stored in
/// `unit`, with free water at 3.0e-3 mm^2/s and rho_max 1e7 /cm^3.
fn adc_density(unit: AdcUnit, adc_min: Level, rho_min: f64, reference_adc: f64) -> DensitySpec {
    DensitySpec {
        image: ImageSource::new("adc").normalized(Normalization::Adc { unit }),
        adc_water_mm2_s: 3.0e-3,
        adc_min_mm2_s: adc_min,
        rho_max_per_cm3: 1e7,
        rho_min_per_cm3: rho_min,
        reference_adc_mm2_s: Level::Value(reference_adc),
    }
}

/// A cellularity mapping (`lq()`, 70 Gy to the reference voxel) with this
/// density model.
fn cellularity(density: DensitySpec) -> MappingSpec {
    let mut spec = IsoEffectSpec::new(lq(), 70.0);
    spec.density = Some(density);
    MappingSpec::Cellularity(spec)
}

fn uniform(dose_gy: f64) -> MappingSpec {
    MappingSpec::Uniform(UniformSpec {
        dose_gy,
        base_dose_gy: None,
    })
}

/// A prescription of `doses_gy` in `fractions` on a row of 3 mm voxels.
fn row_prescription(doses_gy: Vec<f32>, fractions: u32) -> Prescription {
    let g = grid([doses_gy.len(), 1, 1], [3.0; 3]);
    Prescription::new(
        Volume::from_vec(g, doses_gy).unwrap(),
        fractions,
        Provenance::default(),
    )
    .unwrap()
}

// ---------------------------------------------------------------- numbers

/// Linear dose painting by numbers, `shared/reference/dose_painting.md`
/// (Bentzen 2005): `D = D_low + (I - I_low)/(I_high - I_low) (D_high - D_low)`,
/// clipped to `D_low`/`D_high`, inside the target only; the base region gets
/// its base dose. Expected doses worked by hand for I_low 1.2 -> 70 Gy and
/// I_high 2.0 -> 84 Gy (14 Gy over 0.8: 17.5 Gy per unit).
#[test]
fn linear_mapping_follows_bentzen_formula() {
    let tbr = [0.8f32, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 1.6, 1.6];
    let target = [true, true, true, true, true, true, true, false, false];
    let inputs = row_inputs(&[("fmiso", &tbr)], Some(&target), 35);
    let ptv = structure(inputs.grid(), "PTV", |[i, _, _]| i < 8);
    let inputs = inputs.with_base_region(ptv).unwrap();
    let rx = linear_70_84(ImageSource::new("fmiso"))
        .map(&inputs)
        .unwrap();
    let expected = [70.0, 70.0, 73.5, 77.0, 80.5, 84.0, 84.0, 70.0, 0.0];
    for (d, e) in rx.target_gy().as_slice().iter().zip(expected) {
        assert!(close(f64::from(*d), e, 1e-4), "{d} vs {e}");
    }
    assert_eq!(rx.fractions(), 35);
    assert_eq!(rx.prescribed_voxels().len(), 8);
}

#[test]
fn levels_resolve_against_the_target() {
    // Values 1..=100: the 25th percentile is 25.75 (linear interpolation,
    // (n - 1) p = 24.75 between the 25th and 26th values).
    let values: Vec<f32> = (1..=100).map(|v| v as f32).collect();
    let inputs = row_inputs(&[("fdg", &values)], None, 30);
    let spec = MappingSpec::Linear(LinearSpec::new(
        ImageSource::new("fdg"),
        Level::Statistic(TargetStatistic::Percentile(25.0)),
        Level::Statistic(TargetStatistic::Max),
        60.0,
        80.0,
    ));
    let rx = spec.map(&inputs).unwrap();
    let d = rx.target_gy().as_slice();
    assert!(close(f64::from(d[24]), 60.0, 1e-5)); // value 25 < 25.75
    // value 26: 60 + (26 - 25.75)/(100 - 25.75) * 20
    assert!(close(f64::from(d[25]), 60.0 + 0.25 / 74.25 * 20.0, 1e-4));
    assert!(close(f64::from(d[99]), 80.0, 1e-5));
}

#[test]
fn sigmoid_and_piecewise_mappings() {
    let values = [1.0f32, 1.5, 2.0];
    let inputs = row_inputs(&[("x", &values)], None, 35);
    let sigmoid: MappingSpec = serde_json::from_str(
        r#"{"kind": "sigmoid", "image": {"image": "x"}, "i_50": 1.5, "width": 0.25,
            "d_low_gy": 70, "d_high_gy": 84}"#,
    )
    .unwrap();
    let d = sigmoid.map(&inputs).unwrap();
    let d = d.target_gy().as_slice();
    // 70 + 14 / (1 + e^2) at I = 1.0, the midpoint 77 at 1.5.
    assert!(close(
        f64::from(d[0]),
        70.0 + 14.0 / (1.0 + 2f64.exp()),
        1e-4
    ));
    assert!(close(f64::from(d[1]), 77.0, 1e-5));
    let piecewise: MappingSpec = serde_json::from_str(
        r#"{"kind": "piecewise", "image": {"image": "x"},
            "points": [[1.0, 70.0], [1.25, 80.0], [2.0, 86.0]], "cap_gy": 85}"#,
    )
    .unwrap();
    let out = piecewise.map_with_report(&inputs).unwrap();
    let d = out.prescription.target_gy().as_slice();
    // 1.5 lies a third of the way from 1.25 to 2.0: 80 + 6/3 = 82; 2.0 is capped.
    assert!(close(f64::from(d[1]), 82.0, 1e-4));
    assert!(close(f64::from(d[2]), 85.0, 1e-6));
    assert_eq!(out.report.count(AdjustmentKind::LoweredToCap), 1);
}

#[test]
fn risk_map_combines_images_with_weights() {
    let fdg = [1.0f32, 3.0, 5.0];
    let fmiso = [1.0f32, 1.0, 2.0];
    let inputs = row_inputs(&[("fdg", &fdg), ("fmiso", &fmiso)], None, 35);
    let spec = MappingSpec::RiskMap(RiskMapSpec {
        components: vec![
            RiskComponent {
                image: ImageSource::new("fdg"),
                low: 1.0.into(),
                high: 5.0.into(),
                weight: 2.0,
            },
            RiskComponent {
                image: ImageSource::new("fmiso"),
                low: 1.0.into(),
                high: 2.0.into(),
                weight: 2.0,
            },
        ],
        d_low_gy: 70.0,
        d_high_gy: 84.0,
        base_dose_gy: None,
        floor_gy: None,
        cap_gy: None,
    });
    // Risks: FDG 0, 0.5, 1 and FMISO 0, 0, 1, equally weighted: 0, 0.25, 1.
    let d = spec.map(&inputs).unwrap();
    let d = d.target_gy().as_slice();
    for (x, e) in d.iter().zip([70.0, 73.5, 84.0]) {
        assert!(close(f64::from(*x), e, 1e-4));
    }
}

// ---------------------------------------------------------------- contours

/// Dose painting by contours as in Lee et al. 2008 (FMISO-guided IMRT, 84 Gy
/// to the hypoxic subvolume with 70 Gy to the GTV in 35 fractions), with
/// hypoxia defined as tumour-to-blood ratio >= 1.3
/// (`shared/reference/dose_painting.md`).
#[test]
fn fmiso_sib_gives_84_gy_to_the_hypoxic_subvolume() {
    let inputs = head_and_neck();
    let spec = one_level(
        "HTV",
        "fmiso",
        ThresholdRule::RatioToReference {
            region: "blood".into(),
            ratio: 1.3,
            statistic: ReferenceStatistic::default(),
        },
        84.0,
    );
    let out = spec.map_with_report(&inputs).unwrap();
    let rx = &out.prescription;
    let htv = &out.report.structures[0];
    assert_eq!(htv.name(), "HTV");
    assert_eq!(htv.role(), StructureRole::Target);
    // The blood pool is 2.0 kBq/mL: hypoxic where FMISO >= 2.6 inside the GTV.
    let fmiso = inputs.image("fmiso").unwrap().as_slice();
    let gtv = inputs.target().mask().as_slice();
    let ptv = inputs.base_region().unwrap().mask().as_slice();
    let mut hypoxic = 0;
    for n in 0..fmiso.len() {
        let expect_htv = gtv[n] && fmiso[n] >= 2.6;
        assert_eq!(htv.mask().as_slice()[n], expect_htv, "voxel {n}");
        let d = rx.target_gy().as_slice()[n];
        let expected = if expect_htv {
            84.0
        } else if gtv[n] || ptv[n] {
            70.0
        } else {
            0.0
        };
        assert!(close(f64::from(d), expected, 1e-6));
        hypoxic += usize::from(expect_htv);
    }
    assert!(hypoxic > 0 && hypoxic < gtv.iter().filter(|b| **b).count());
    // 70 Gy in 2.0 Gy and 84 Gy in 2.4 Gy fractions; EQD2 (alpha/beta 10)
    // 70 and 84 (1 + 2.4/10) / (1 + 2/10) = 86.8 Gy.
    let levels = &out.report.sib_levels;
    assert_eq!(levels.len(), 2);
    assert!(close(levels[0].dose_per_fraction_gy, 2.0, 1e-12));
    assert!(close(levels[0].eqd2_gy, 70.0, 1e-9));
    assert!(close(levels[1].dose_per_fraction_gy, 2.4, 1e-12));
    assert!(close(levels[1].eqd2_gy, 86.8, 1e-9));
    assert!(close(levels[1].volume_cm3, hypoxic as f64 * 0.008, 1e-9));
}

/// FLAME (Kerkmeijer et al. 2021): 77 Gy in 35 fractions with a focal boost up
/// to 95 Gy; EQD2 at alpha/beta 1.5 Gy 81.4 and 114.4 Gy
/// (`shared/reference/radiobiology.csv`).
#[test]
fn flame_sib_eqd2() {
    let levels = sib_doses(77.0, &[95.0], 35, 1.5).unwrap();
    assert!(close(levels[0].2, 81.4, 0.05));
    assert!(close(levels[1].2, 114.4, 0.05));
    assert!(close(levels[1].1, 95.0 / 35.0, 1e-12));
}

#[test]
fn fdg_fraction_of_suvmax_threshold() {
    let inputs = head_and_neck();
    let spec = one_level("BTV", "fdg", ThresholdRule::FractionOfMax(0.5), 77.0);
    let out = spec.map_with_report(&inputs).unwrap();
    let fdg = inputs.image("fdg").unwrap().as_slice();
    let gtv = inputs.target().mask().as_slice();
    let suv_max = (0..fdg.len())
        .filter(|&n| gtv[n])
        .map(|n| fdg[n])
        .fold(f32::MIN, f32::max);
    for n in 0..fdg.len() {
        let inside = gtv[n] && f64::from(fdg[n]) >= 0.5 * f64::from(suv_max);
        assert_eq!(out.report.structures[0].mask().as_slice()[n], inside);
    }
}

#[test]
fn cleanup_removes_small_components_and_margin_is_anisotropic() {
    let g = grid([12, 10, 10], [1.0; 3]);
    let img = Volume::from_fn(g.clone(), |[i, j, k]| {
        let blob = (3..6).contains(&i) && (3..6).contains(&j) && (3..6).contains(&k);
        if blob || [i, j, k] == [9, 8, 8] {
            10.0f32
        } else {
            1.0
        }
    });
    let gtv = Structure::new(
        "GTV",
        StructureRole::Target,
        Volume::filled(g.clone(), true),
    )
    .unwrap();
    let inputs = MappingInputs::new(gtv, 30)
        .unwrap()
        .with_image("fdg", img)
        .unwrap();
    let mut level = ContourLevelSpec::new(
        "BTV",
        ImageSource::new("fdg"),
        ThresholdRule::Above(5.0),
        66.0,
    );
    level.min_volume_cm3 = 0.005; // 5 voxels of 1 mm^3
    level.margin_mm = [2.0, 0.0, 0.0].into();
    let out = MappingSpec::Contours(ContourSpec::new(60.0, vec![level]))
        .map_with_report(&inputs)
        .unwrap();
    let s = &out.report.structures[0];
    // The 27-voxel blob grows by 2 voxels along x only; the lone voxel is gone.
    assert_eq!(s.voxel_count(), 7 * 3 * 3);
    assert!(s.mask()[[1, 4, 4]] && s.mask()[[7, 4, 4]] && !s.mask()[[8, 4, 4]]);
    assert!(!s.mask()[[4, 2, 4]] && !s.mask()[[4, 4, 2]]);
    assert!(!s.mask()[[9, 8, 8]]);
    let lvl = &out.report.sib_levels[1];
    assert_eq!((lvl.components_kept, lvl.components_removed), (1, 1));
    assert!(
        out.report
            .notes
            .iter()
            .any(|n| n.contains("removed 1 connected component"))
    );
}

#[test]
fn nested_levels_stay_inside_each_other() {
    let inputs = head_and_neck();
    let level = |name: &str, rule: ThresholdRule, dose: f64| {
        ContourLevelSpec::new(name, ImageSource::new("fdg"), rule, dose)
    };
    let mut spec = ContourSpec::new(
        70.0,
        vec![
            level("L1", ThresholdRule::FractionOfMax(0.8), 77.0),
            // Below the first level's threshold: on its own it is larger.
            level("L2", ThresholdRule::FractionOfMax(0.6), 84.0),
        ],
    );
    let nested = MappingSpec::Contours(spec.clone())
        .map_with_report(&inputs)
        .unwrap();
    let (l1, l2) = (&nested.report.structures[0], &nested.report.structures[1]);
    assert!(l2.voxel_count() > 0);
    assert_eq!(l2.mask(), l1.mask());
    spec.nested = false;
    let flat = MappingSpec::Contours(spec.clone())
        .map_with_report(&inputs)
        .unwrap();
    assert!(flat.report.structures[1].voxel_count() > l1.voxel_count());
    // Overlaps take the higher dose.
    let n = inputs.grid().linear_index([11, 11, 9]);
    assert!(close(
        f64::from(flat.prescription.target_gy().as_slice()[n]),
        84.0,
        1e-6
    ));
    // Nested levels must not decrease.
    spec.nested = true;
    spec.levels[1].dose_gy = 75.0;
    assert!(matches!(
        MappingSpec::Contours(spec).build().unwrap_err(),
        Error::InvalidParameter { .. }
    ));
}

#[test]
fn empty_level_is_reported_not_an_error() {
    let inputs = head_and_neck();
    let spec = one_level("none", "fdg", ThresholdRule::Above(1e6), 80.0);
    let out = spec.map_with_report(&inputs).unwrap();
    assert_eq!(out.report.structures[0].voxel_count(), 0);
    assert!(out.report.notes.iter().any(|n| n.contains("is empty")));
}

// ------------------------------------------------------- radiobiological

fn binding() -> Po2Model {
    // Half-maximal FMISO binding at 1.4 mmHg (Warren & Partridge 2016).
    Po2Model::Binding {
        uptake_oxic: 1.0,
        uptake_anoxic: 2.5,
        k_mmhg: 1.4,
        max_po2_mmhg: 60.0,
    }
}

fn oxygen(modifier: Option<HypoxicModifier>) -> OxygenSpec {
    OxygenSpec {
        image: ImageSource::new("fmiso"),
        po2: binding(),
        oer: OerModel::carlson_2006(),
        modifier,
    }
}

/// The positive root of `a D + b D^2 = e`, by the textbook quadratic formula.
fn root(a: f64, b: f64, e: f64) -> f64 {
    (-a + (a * a + 4.0 * b * e).sqrt()) / (2.0 * b)
}

/// Iso-effect dose of an anoxic and an oxic voxel by hand: OER(p) =
/// m (p + K)/(m p + K) with Carlson 2006 (m_alpha 2.5, m_beta 3.0, K 3.28 mmHg;
/// `shared/reference/radiobiology.csv`), alpha_v = alpha/OER_alpha, beta_v =
/// beta/OER_beta^2, and alpha_v D + beta_v D^2/n = alpha D_ref + beta D_ref^2/n
/// (`shared/reference/dose_painting.md`).
#[test]
fn hypoxia_dose_matches_closed_form() {
    let tbr = [3.0f32, 0.9, 1.75];
    let inputs = row_inputs(&[("fmiso", &tbr)], None, 35);
    let mut spec = IsoEffectSpec::new(lq(), 70.0);
    spec.oxygen = Some(oxygen(None));
    let out = MappingSpec::Hypoxia(spec).map_with_report(&inputs).unwrap();
    let d = out.prescription.target_gy().as_slice();
    let e_ref = 0.35 * 70.0 + 0.035 * 70.0 * 70.0 / 35.0; // 29.4
    let oer = |m: f64, p: f64| m * (p + 3.28) / (m * p + 3.28);
    let dose = |p: f64| {
        let (oa, ob) = (oer(2.5, p), oer(3.0, p));
        root(0.35 / oa, 0.035 / (ob * ob) / 35.0, e_ref)
    };
    assert!(
        close(f64::from(d[0]), dose(0.0), 1e-3),
        "{} vs {}",
        d[0],
        dose(0.0)
    );
    assert!(close(f64::from(d[1]), dose(60.0), 1e-3));
    // TBR 1.75 is half-way between oxic (1.0) and anoxic (2.5) uptake: p = K.
    assert!(close(f64::from(d[2]), dose(1.4), 1e-3));
    // Anoxic voxels need far more dose (about 2.4 x 70 Gy), oxic ones a little more.
    assert!(d[0] > 150.0 && d[1] > 70.0 && d[1] < 73.0);
    assert_eq!(out.report.count(AdjustmentKind::Po2Anoxic), 1);
    assert_eq!(out.report.count(AdjustmentKind::Po2Oxic), 1);
}

/// A hypoxic radiosensitiser as a reduced maximum OER: with SER 1.25 the
/// anoxic OERs become 2.0 and 2.4, so the anoxic dose drops; compared with
/// and without the drug.
#[test]
fn hypoxic_modifier_lowers_the_hypoxic_dose() {
    let tbr = [3.0f32, 2.0, 1.2, 0.5];
    let inputs = row_inputs(&[("fmiso", &tbr)], None, 35);
    let drug = HypoxicModifier {
        name: "nimorazole".into(),
        sensitizer_enhancement_ratio: 1.25,
    };
    let mut spec = IsoEffectSpec::new(lq(), 70.0);
    spec.oxygen = Some(oxygen(Some(drug)));
    let with = MappingSpec::Hypoxia(spec.clone()).map(&inputs).unwrap();
    let without = MappingSpec::Hypoxia(spec.without_modifier())
        .map(&inputs)
        .unwrap();
    let (w, wo) = (with.target_gy().as_slice(), without.target_gy().as_slice());
    for n in 0..tbr.len() {
        assert!(w[n] <= wo[n]);
    }
    assert!(w[0] < wo[0] - 20.0);
    let e_ref = 29.4;
    let expected = root(0.35 / 2.0, 0.035 / (2.4 * 2.4) / 35.0, e_ref);
    assert!(close(f64::from(w[0]), expected, 1e-3));
    assert!(with.provenance().description.contains("nimorazole"));
}

/// After an iso-effect prescription every voxel has the same expected number
/// of surviving clonogens per unit volume as the reference voxel
/// (`rho_v S_v(D_v) = rho_ref S_ref(D_ref)`), checked with
/// `dosepaint-radiobio`'s survival map and OER model.
#[test]
fn iso_effect_equalises_surviving_clonogens() {
    let inputs = head_and_neck();
    let mut spec = IsoEffectSpec::new(lq(), 70.0);
    spec.oxygen = Some(OxygenSpec {
        image: fmiso_tbr(),
        ..oxygen(None)
    });
    spec.density = Some(adc_density(
        AdcUnit::Micro,
        Level::Statistic(TargetStatistic::Min),
        1e4,
        1.5e-3,
    ));
    let rx = MappingSpec::IsoEffect(spec).map(&inputs).unwrap();

    let voxels = inputs.target().voxel_indices();
    let fmiso = inputs.image("fmiso").unwrap().as_slice();
    let adc = inputs.image("adc").unwrap().as_slice();
    let adc_min = voxels
        .iter()
        .map(|&n| f64::from(adc[n as usize]) * 1e-6)
        .fold(f64::INFINITY, f64::min);
    let po2: Vec<f64> = voxels
        .iter()
        .map(|&n| binding().po2(f64::from(fmiso[n as usize]) / 2.0).unwrap().0)
        .collect();
    let (mut alpha, mut beta) = (vec![0.0; voxels.len()], vec![0.0; voxels.len()]);
    OerModel::carlson_2006()
        .hypoxic_maps(&lq(), &po2, &mut alpha, &mut beta)
        .unwrap();
    let doses: Vec<f64> = voxels
        .iter()
        .map(|&n| f64::from(rx.target_gy().as_slice()[n as usize]))
        .collect();
    let mut survival = vec![0.0; voxels.len()];
    dosepaint_radiobio::survival_map(&doses, 35, (&alpha).into(), (&beta).into(), &mut survival)
        .unwrap();
    let rho = |adc_mm2: f64| clonogen_density(adc_mm2, 3.0e-3, adc_min, 1e7, 1e4).0;
    let reference = rho(1.5e-3) * dosepaint_radiobio::survival_fraction(&lq(), 70.0, 35).unwrap();
    let mut spread = (f64::INFINITY, 0.0f64);
    for (k, &n) in voxels.iter().enumerate() {
        let survivors = rho(f64::from(adc[n as usize]) * 1e-6) * survival[k];
        let ratio = survivors / reference;
        // f32 dose storage: |dS/S| = (alpha + 2 beta D / n) |dD| < 1e-5.
        assert!(close(ratio, 1.0, 1e-4), "voxel {n}: ratio {ratio}");
        spread = (spread.0.min(doses[k]), spread.1.max(doses[k]));
    }
    // The doses really vary (dense hypoxic core vs looser rim).
    assert!(spread.1 - spread.0 > 10.0, "{spread:?}");
}

/// ADC -> clonogen density with the stated floor for ADC at or above free
/// water (`shared/reference/dose_painting.md`), reported with its count.
#[test]
fn cellularity_floor_is_applied_and_reported() {
    // 1e-6 mm^2/s: two voxels at or above free water (3.0e-3 mm^2/s).
    let adc = [600.0f32, 1200.0, 3000.0, 3300.0];
    let inputs = row_inputs(&[("adc", &adc)], None, 35);
    let spec = cellularity(adc_density(
        AdcUnit::Micro,
        Level::Value(0.6e-3),
        1e5,
        0.6e-3,
    ));
    let out = spec.map_with_report(&inputs).unwrap();
    assert_eq!(out.report.count(AdjustmentKind::DensityFloor), 2);
    let d = out.prescription.target_gy().as_slice();
    // The reference voxel gets the reference dose; rho at 1.2e-3 is 0.75 rho_max,
    // so ln(0.75) less log kill; floored voxels ln(1e5 / 1e7) less.
    assert!(close(f64::from(d[0]), 70.0, 1e-4));
    assert!(close(
        f64::from(d[1]),
        root(0.35, 0.001, 29.4 + 0.75f64.ln()),
        1e-3
    ));
    assert!(close(
        f64::from(d[2]),
        root(0.35, 0.001, 29.4 + 0.01f64.ln()),
        1e-3
    ));
    assert_eq!(d[2], d[3]);
}

/// Proliferation: FLT uptake twice the reference halves Tpot; the extra log
/// cell kill is alpha x the difference of `dosepaint-radiobio`'s repopulation
/// BED losses over 35 weekday fractions (46 days, kick-off 21 days).
#[test]
fn proliferation_adds_the_repopulation_loss() {
    let flt = [2.0f32, 4.0, 1.0, 0.0];
    let inputs = row_inputs(&[("flt", &flt)], None, 35);
    let mut spec = IsoEffectSpec::new(lq(), 70.0);
    spec.proliferation = Some(ProliferationSpec {
        image: ImageSource::new("flt"),
        reference_uptake: Level::Value(2.0),
        tpot_reference_days: 3.0,
        kickoff_days: 21.0,
        overall_time_days: None,
    });
    let out = MappingSpec::Proliferation(spec)
        .map_with_report(&inputs)
        .unwrap();
    let d = out.prescription.target_gy().as_slice();
    let loss = |tpot: f64| {
        0.35 * Repopulation::tpot(21.0, 0.35, tpot)
            .unwrap()
            .bed_loss_gy(46.0)
    };
    assert!(close(f64::from(d[0]), 70.0, 1e-4));
    let e = |dose: f32| lq().effect(f64::from(dose), 35);
    assert!(close(e(d[1]), 29.4 + loss(1.5) - loss(3.0), 1e-4));
    assert!(close(e(d[2]), 29.4 + loss(6.0) - loss(3.0), 1e-4));
    // Zero uptake: no proliferation at all, reported.
    assert!(close(e(d[3]), 29.4 - loss(3.0), 1e-4));
    assert_eq!(out.report.count(AdjustmentKind::NoProliferation), 1);
}

/// Patient radiosensitivity from the RSI via GARD (Scott et al. 2017): alpha =
/// -ln(RSI)/2 - 2 x 0.05; every voxel gets the dose with the same log cell kill
/// for the patient as the mapped dose has for the reference cells.
#[test]
fn patient_radiosensitivity_scales_every_voxel() {
    let inputs = head_and_neck();
    let inner = linear_70_84(fmiso_tbr());
    let plain = inner.map(&inputs).unwrap();
    let spec = MappingSpec::PatientRadiosensitivity(PatientSpec {
        mapping: Box::new(inner),
        reference_lq: lq(),
        patient: PatientRadiosensitivity::Rsi(0.6),
    });
    let adjusted = spec.map(&inputs).unwrap();
    let patient = LqParams::new(-(0.6f64.ln()) / 2.0 - 0.1, 0.05).unwrap();
    for (a, p) in adjusted
        .target_gy()
        .as_slice()
        .iter()
        .zip(plain.target_gy().as_slice())
    {
        if *p > 0.0 {
            let want = lq().effect(f64::from(*p), 35);
            let got = patient.effect(f64::from(*a), 35);
            assert!(close(got, want, 1e-3 * want));
            // A radioresistant patient (SF2 0.6) needs more dose everywhere.
            assert!(a > p);
        } else {
            assert_eq!(*a, 0.0);
        }
    }
}

// ------------------------------------------------------------ combinations

fn demo_spec() -> MappingSpec {
    let mut fdg50 = ContourLevelSpec::new(
        "BTV_FDG50",
        ImageSource::new("fdg"),
        ThresholdRule::FractionOfMax(0.5),
        77.0,
    );
    fdg50.margin_mm = 2.0.into();
    MappingSpec::Max(MaxSpec {
        mappings: vec![
            linear_70_84(fmiso_tbr()),
            MappingSpec::Contours(ContourSpec::new(70.0, vec![fdg50])),
        ],
    })
}

#[test]
fn maximum_of_fmiso_numbers_and_fdg_contours() {
    let inputs = head_and_neck();
    let spec = demo_spec();
    let out = spec.map_with_report(&inputs).unwrap();
    let MappingSpec::Max(parts) = &spec else {
        unreachable!()
    };
    let a = parts.mappings[0].map(&inputs).unwrap();
    let b = parts.mappings[1].map(&inputs).unwrap();
    let rx = &out.prescription;
    for n in 0..inputs.grid().n_voxels() {
        let want = a.target_gy().as_slice()[n].max(b.target_gy().as_slice()[n]);
        assert_eq!(rx.target_gy().as_slice()[n], want);
    }
    // The whole PTV is prescribed at least 70 Gy, nothing outside it.
    let ptv = inputs.base_region().unwrap().mask().as_slice();
    for (n, d) in rx.target_gy().as_slice().iter().enumerate() {
        assert_eq!(*d >= 70.0, ptv[n]);
    }
    assert_eq!(out.report.structures.len(), 1);
    // The provenance holds the spec, which reproduces the prescription exactly.
    let again = MappingSpec::from_provenance(rx).unwrap();
    assert_eq!(again, spec);
    assert_eq!(&again.map(&inputs).unwrap(), rx);
    // And the spec survives JSON and TOML-like round trips through serde.
    let json = spec.to_json().unwrap();
    assert!(json.contains("\"kind\": \"max\"") && json.contains("\"fraction_of_max\": 0.5"));
    assert_eq!(MappingSpec::from_json(&json).unwrap(), spec);
}

/// Every built-in mapping kind survives a JSON round trip, builds, maps, and
/// records a provenance spec that reproduces the prescription.
#[test]
fn every_spec_kind_round_trips_and_reproduces() {
    let inputs = head_and_neck();
    let linear = MappingSpec::Linear(
        LinearSpec::new(fmiso_tbr(), 1.2, 2.0, 70.0, 84.0)
            .with_base_dose(70.0)
            .with_limits(Some(70.0), Some(82.0)),
    );
    let mut iso = IsoEffectSpec::new(lq(), 70.0);
    iso.oxygen = Some(OxygenSpec {
        image: fmiso_tbr(),
        modifier: Some(HypoxicModifier {
            name: "nimorazole".into(),
            sensitizer_enhancement_ratio: 1.2,
        }),
        ..oxygen(None)
    });
    iso.proliferation = Some(ProliferationSpec {
        image: ImageSource::new("flt").smoothed([4.0, 4.0, 6.0]),
        reference_uptake: Level::Statistic(TargetStatistic::Median),
        tpot_reference_days: 3.0,
        kickoff_days: 21.0,
        overall_time_days: Some(45.0),
    });
    iso.base_dose_gy = Some(70.0);
    iso.cap_gy = Some(90.0);
    let json = r#"{"kind": "sigmoid", "image": {"image": "fdg", "normalization": {"suv_peak": {}}},
                   "i_50": {"percentile": 60}, "width": 0.05, "d_low_gy": 70, "d_high_gy": 80}"#;
    let specs = vec![
        linear.clone(),
        MappingSpec::from_json(json).unwrap(),
        MappingSpec::Hypoxia(iso.clone()),
        MappingSpec::IsoEffect(iso),
        demo_spec(),
        MappingSpec::PatientRadiosensitivity(PatientSpec {
            mapping: Box::new(linear.clone()),
            reference_lq: lq(),
            patient: PatientRadiosensitivity::AlphaScale(0.9),
        }),
        MappingSpec::Bounded(dosepaint_biomap::BoundedSpec {
            mapping: Box::new(MappingSpec::Redistribute(RedistributeSpec {
                mapping: Box::new(linear),
                reference_dose_gy: 73.0,
                conserve: Conserve::IntegralDose,
                reference_base_dose_gy: Some(70.0),
                rescale: Rescale::AboveBaseline { baseline_gy: 70.0 },
                floor_gy: None,
                cap_gy: Some(84.0),
            })),
            lower: 0.95,
            upper: 1.05,
        }),
    ];
    for spec in specs {
        let json = spec.to_json().unwrap();
        let back = MappingSpec::from_json(&json).unwrap();
        assert_eq!(back, spec, "{json}");
        let mapping = back.build().unwrap();
        assert_eq!(mapping.spec().as_ref(), Some(&spec));
        let rx = mapping.map(&inputs).unwrap();
        let again = MappingSpec::from_provenance(&rx)
            .unwrap()
            .map(&inputs)
            .unwrap();
        assert_eq!(again, rx, "{json}");
    }
}

/// The JSON specs shown in `docs/dose-painting.md` parse and build.
#[test]
fn specs_in_the_documentation_are_valid() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/dose-painting.md"
    ))
    .unwrap();
    let blocks: Vec<&str> = page
        .split("```json")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 2);
    let inputs = head_and_neck();
    for b in blocks {
        let spec = MappingSpec::from_json(b).unwrap_or_else(|e| panic!("{e}: {b}"));
        spec.build().unwrap().map(&inputs).unwrap();
    }
}

#[test]
fn weighted_mean_of_prescriptions() {
    let inputs = head_and_neck();
    let spec = MappingSpec::Weighted(WeightedSpec {
        components: vec![
            WeightedComponent {
                weight: 1.0,
                mapping: uniform(70.0),
            },
            WeightedComponent {
                weight: 3.0,
                mapping: uniform(80.0),
            },
        ],
    });
    let rx = spec.map(&inputs).unwrap();
    for &n in &inputs.target().voxel_indices() {
        assert_eq!(rx.target_gy().as_slice()[n as usize], 77.5);
    }
}

fn mean_over(rx: &Prescription, voxels: &[u32]) -> f64 {
    voxels
        .iter()
        .map(|&n| f64::from(rx.target_gy().as_slice()[n as usize]))
        .sum::<f64>()
        / voxels.len() as f64
}

#[test]
fn redistribution_keeps_the_mean_target_dose() {
    let inputs = head_and_neck();
    let linear = linear_70_84(fmiso_tbr());
    let painted = linear.map(&inputs).unwrap();
    let gtv = inputs.target().voxel_indices();
    let params = |conserve, rescale, cap| RedistributeSpec {
        mapping: Box::new(linear.clone()),
        reference_dose_gy: 72.0,
        conserve,
        reference_base_dose_gy: None,
        rescale,
        floor_gy: None,
        cap_gy: cap,
    };
    // Proportional: the same shape, mean 72 Gy.
    let out = MappingSpec::Redistribute(params(
        Conserve::MeanTargetDose,
        Rescale::Proportional,
        None,
    ))
    .map_with_report(&inputs)
    .unwrap();
    let rx = &out.prescription;
    assert!(close(mean_over(rx, &gtv), 72.0, 1e-3));
    let k = f64::from(rx.target_gy().as_slice()[gtv[0] as usize])
        / f64::from(painted.target_gy().as_slice()[gtv[0] as usize]);
    for &n in &gtv {
        let n = n as usize;
        let ratio =
            f64::from(rx.target_gy().as_slice()[n]) / f64::from(painted.target_gy().as_slice()[n]);
        assert!(close(ratio, k, 1e-5));
    }
    assert!(out.report.notes.iter().any(|n| n.contains("scale factor")));
    // The rest of the PTV keeps its base dose.
    let rim = inputs.grid().linear_index([11, 11, 2]);
    assert!(!inputs.target().mask().as_slice()[rim]);
    assert_eq!(rx.target_gy().as_slice()[rim], 70.0);
    // With a cap the mean still holds and the cap too.
    let capped = MappingSpec::Redistribute(params(
        Conserve::MeanTargetDose,
        Rescale::AboveBaseline { baseline_gy: 60.0 },
        Some(74.0),
    ))
    .map_with_report(&inputs)
    .unwrap();
    assert!(close(mean_over(&capped.prescription, &gtv), 72.0, 1e-3));
    assert!(
        capped
            .prescription
            .target_gy()
            .as_slice()
            .iter()
            .all(|d| *d <= 74.0)
    );
    assert!(capped.report.count(AdjustmentKind::LoweredToCap) > 0);
    // Integral dose over GTV + PTV.
    let mut integral = params(Conserve::IntegralDose, Rescale::Proportional, None);
    integral.reference_base_dose_gy = Some(66.0);
    let rx = MappingSpec::Redistribute(integral).map(&inputs).unwrap();
    let ptv = inputs.base_region().unwrap().voxel_indices();
    let rest: Vec<u32> = ptv
        .iter()
        .copied()
        .filter(|&n| !inputs.target().mask().as_slice()[n as usize])
        .collect();
    let total: f64 = ptv
        .iter()
        .map(|&n| f64::from(rx.target_gy().as_slice()[n as usize]))
        .sum();
    let goal = 72.0 * gtv.len() as f64 + 66.0 * rest.len() as f64;
    assert!(close(total, goal, 1e-5 * goal));
    // An unreachable goal is refused.
    let impossible = MappingSpec::Redistribute(params(
        Conserve::MeanTargetDose,
        Rescale::Proportional,
        Some(71.0),
    ));
    assert!(impossible.map(&inputs).is_err());
}

#[test]
fn bounded_sets_relative_bounds() {
    let inputs = head_and_neck();
    let spec: MappingSpec = serde_json::from_str(
        r#"{"kind": "bounded", "lower": 0.95, "upper": 1.05,
            "mapping": {"kind": "uniform", "dose_gy": 70, "base_dose_gy": 60}}"#,
    )
    .unwrap();
    let rx = spec.map(&inputs).unwrap();
    let n = inputs.target().voxel_indices()[0] as usize;
    assert!(close(
        f64::from(rx.min_gy().unwrap().as_slice()[n]),
        66.5,
        1e-4
    ));
    assert!(close(
        f64::from(rx.max_gy().unwrap().as_slice()[n]),
        73.5,
        1e-4
    ));
}

/// A custom mapping (implementing the trait, or a closure through `VoxelFn`)
/// joins built-in ones in a combination; the provenance keeps its own spec.
#[test]
fn custom_mappings_combine_with_built_in_ones() {
    let inputs = head_and_neck();
    let custom = VoxelFn::new("flt boost", [ImageSource::new("flt")], |v| {
        66.0 + 2.0 * v.values[0]
    })
    .with_base_dose(66.0)
    .unwrap();
    let combo = MaxOf::new(vec![Box::new(custom), uniform(70.0).build().unwrap()]).unwrap();
    assert!(combo.spec().is_none());
    let rx = combo.map(&inputs).unwrap();
    let flt = inputs.image("flt").unwrap().as_slice();
    for &n in &inputs.target().voxel_indices() {
        let n = n as usize;
        let want = (66.0 + 2.0 * f64::from(flt[n])).max(70.0);
        assert!(close(f64::from(rx.target_gy().as_slice()[n]), want, 1e-4));
    }
    let spec: serde_json::Value = serde_json::from_str(&rx.provenance().spec).unwrap();
    assert_eq!(spec["custom_parts"], true);
    assert_eq!(spec["parts"][0]["kind"], "custom");
    assert_eq!(spec["parts"][1]["kind"], "uniform");
}

// ------------------------------------------------------------- EQD2 / BED

/// 70 Gy in 35 fractions at alpha/beta 10: BED 84, EQD2 70; 60 Gy in 20 at
/// alpha/beta 3: BED 120, EQD2 72 (`shared/reference/radiobiology.csv`).
#[test]
fn eqd2_and_bed_maps() {
    let rx = row_prescription(vec![70.0, 0.0], 35);
    let eqd2 = prescription_eqd2(&rx, &AlphaBetaMap::Uniform(10.0)).unwrap();
    let bed = prescription_bed(&rx, &AlphaBetaMap::Uniform(10.0)).unwrap();
    assert!(close(f64::from(eqd2.as_slice()[0]), 70.0, 1e-4));
    assert!(close(f64::from(bed.as_slice()[0]), 84.0, 1e-4));
    assert_eq!(bed.as_slice()[1], 0.0);
    let rx = row_prescription(vec![60.0, 60.0], 20);
    let ab = AlphaBetaMap::PerVoxel(Box::new(
        Volume::from_vec(rx.grid().clone(), vec![3.0f32, 10.0]).unwrap(),
    ));
    let eqd2 = prescription_eqd2(&rx, &ab).unwrap();
    let bed = prescription_bed(&rx, &ab).unwrap();
    assert!(close(f64::from(eqd2.as_slice()[0]), 72.0, 1e-4));
    assert!(close(f64::from(bed.as_slice()[0]), 120.0, 1e-4));
    assert!(close(f64::from(eqd2.as_slice()[1]), 65.0, 1e-4));
    assert!(close(f64::from(bed.as_slice()[1]), 78.0, 1e-4));
    assert!(prescription_eqd2(&rx, &AlphaBetaMap::Uniform(0.0)).is_err());
}

// ---------------------------------------------------------------- adaptive

fn intent_70_84() -> Prescription {
    row_prescription(vec![70.0, 84.0, 0.0], 35)
}

#[test]
fn adaptive_refuses_or_reports_voxels_already_over_the_intent() {
    let intent = intent_70_84();
    // 60 Gy in 10 fractions (6 Gy each) is EQD2 60 (1.6)/1.2 = 80 Gy > 70 Gy
    // intended in voxel 0; 24 Gy in voxel 1 is as planned.
    let delivered = Delivered::Physical {
        dose_gy: Volume::from_vec(intent.grid().clone(), vec![60.0f32, 24.0, 5.0]).unwrap(),
        fractions: 10,
    };
    let ab = AlphaBetaMap::Uniform(10.0);
    let err = represcribe(&intent, &delivered, &ab, ExcessPolicy::Refuse).unwrap_err();
    match &err {
        Error::DeliveredExceedsIntent {
            count,
            first_voxel,
            delivered_eqd2_gy,
            intended_eqd2_gy,
        } => {
            assert_eq!((*count, *first_voxel), (1, [0, 0, 0]));
            assert!(close(*delivered_eqd2_gy, 80.0, 1e-9));
            assert!(close(*intended_eqd2_gy, 70.0, 1e-9));
        }
        e => panic!("unexpected {e}"),
    }
    assert!(err.to_string().contains("exceeds the new intent"));
    let a = represcribe(&intent, &delivered, &ab, ExcessPolicy::Report).unwrap();
    assert_eq!(a.exceeded.len(), 1);
    assert_eq!(a.remaining.target_gy().as_slice()[0], 0.0);
    assert!(close(
        f64::from(a.dose_per_fraction_gy.as_slice()[1]),
        2.4,
        1e-5
    ));
    // Voxel 2 was never prescribed: nothing more, whatever it received.
    assert_eq!(a.remaining.target_gy().as_slice()[2], 0.0);
    assert_eq!(a.remaining.fractions(), 25);
}

#[test]
fn adaptive_from_delivered_eqd2_and_a_new_image() {
    // 10 fractions of 2 Gy delivered (EQD2 20 Gy) of 70 Gy / 35: 50 Gy EQD2 is
    // left, i.e. 25 x 2 Gy.
    let intent = intent_70_84();
    let g = intent.grid().clone();
    let delivered = Delivered::Eqd2 {
        eqd2_gy: Volume::from_vec(g.clone(), vec![20.0f32, 20.0, 0.0]).unwrap(),
        fractions: 10,
    };
    let a = represcribe(
        &intent,
        &delivered,
        &AlphaBetaMap::Uniform(10.0),
        ExcessPolicy::Refuse,
    )
    .unwrap();
    assert!(close(
        f64::from(a.dose_per_fraction_gy.as_slice()[0]),
        2.0,
        1e-5
    ));
    // Voxel 1 now needs EQD2 86.8 - 20 = 66.8 Gy in 25 fractions: more than
    // 2.4 Gy per fraction (it was under-dosed so far).
    assert!(a.dose_per_fraction_gy.as_slice()[1] > 2.4);

    // A mid-treatment image that shows more hypoxia raises the remaining dose.
    let inputs = head_and_neck();
    let spec = MappingSpec::Bounded(dosepaint_biomap::BoundedSpec {
        mapping: Box::new(linear_70_84(fmiso_tbr())),
        lower: 0.95,
        upper: 1.05,
    });
    let planned = spec.map(&inputs).unwrap();
    let delivered = Delivered::Physical {
        dose_gy: planned.target_gy().map(|&d| d * 10.0 / 35.0),
        fractions: 10,
    };
    let fmiso = inputs
        .image("fmiso")
        .unwrap()
        .map(|&v| if v > 2.0 { v * 1.2 } else { v });
    let mut later = inputs.clone();
    later.insert_image("fmiso", fmiso).unwrap();
    let a = dosepaint_biomap::represcribe_from_image(
        &spec,
        &later,
        &delivered,
        &AlphaBetaMap::Uniform(10.0),
        ExcessPolicy::Refuse,
    )
    .unwrap();
    let (lo, hi) = (a.remaining.min_gy().unwrap(), a.remaining.max_gy().unwrap());
    let mut raised = 0;
    for n in 0..inputs.grid().n_voxels() {
        let before = planned.dose_per_fraction_gy(n);
        let now = f64::from(a.dose_per_fraction_gy.as_slice()[n]);
        assert!(now >= before - 1e-5, "voxel {n}: {now} < {before}");
        raised += usize::from(now > before + 1e-3);
        let t = a.remaining.target_gy().as_slice()[n];
        if t > 0.0 {
            assert!(lo.as_slice()[n] <= t && t <= hi.as_slice()[n]);
        }
    }
    assert!(raised > 0);
    assert!(
        a.remaining
            .provenance()
            .spec
            .contains("\"kind\":\"adaptive\"")
    );
}

// ------------------------------------------------------------ preparation

#[test]
fn normalisations() {
    let g = grid([6, 1, 1], [3.0; 3]);
    let img = Volume::from_vec(g.clone(), vec![1.0f32, 2.0, 3.0, 4.0, 8.0, 2.0]).unwrap();
    let reference = structure_from(
        &g,
        "muscle",
        StructureRole::Other,
        vec![true, true, true, false, false, false],
    );
    let target = structure_from(
        &g,
        "GTV",
        StructureRole::Target,
        vec![false, false, false, true, true, false],
    );
    let inputs = MappingInputs::new(target, 30)
        .unwrap()
        .with_region("muscle", reference)
        .unwrap()
        .with_image("pet", img)
        .unwrap();
    let prep = |n: Normalization| {
        ImageSource::new("pet")
            .normalized(n)
            .prepare(&inputs)
            .unwrap()
            .as_slice()
            .to_vec()
    };
    // Muscle mean 2, sample sd 1.
    assert_eq!(
        prep(Normalization::ZScore {
            region: "muscle".into()
        })[4],
        6.0
    );
    assert_eq!(
        prep(Normalization::ReferenceRatio {
            region: "muscle".into(),
            statistic: ReferenceStatistic::default()
        })[4],
        4.0
    );
    assert_eq!(
        prep(Normalization::SuvMax {
            region: "target".into()
        })[3],
        0.5
    );
    assert_eq!(prep(Normalization::None)[3], 4.0);
    // Smoothing by 0 mm is the identity.
    let same = ImageSource::new("pet")
        .smoothed(0.0)
        .prepare(&inputs)
        .unwrap();
    assert_eq!(same.as_slice(), inputs.image("pet").unwrap().as_slice());
}

/// Smoothing inside a mapping (computed only around the inputs' structures)
/// gives the same prescription as smoothing the whole image first.
#[test]
fn smoothing_in_a_mapping_equals_smoothing_the_whole_image() {
    let inputs = head_and_neck();
    let smoothed =
        dosepaint_biomap::gaussian_smooth(inputs.image("fmiso").unwrap(), [5.0, 5.0, 7.0]).unwrap();
    let with_image = inputs.clone().with_image("fmiso_s", smoothed).unwrap();
    let a = linear_70_84(
        ImageSource::new("fmiso")
            .smoothed([5.0, 5.0, 7.0])
            .ratio_to("blood"),
    )
    .map(&with_image)
    .unwrap();
    let b = linear_70_84(ImageSource::new("fmiso_s").ratio_to("blood"))
        .map(&with_image)
        .unwrap();
    for (x, y) in a
        .target_gy()
        .as_slice()
        .iter()
        .zip(b.target_gy().as_slice())
    {
        assert!(close(f64::from(*x), f64::from(*y), 1e-4));
    }
    // Smoothing lowers the hot core.
    let raw = linear_70_84(fmiso_tbr()).map(&inputs).unwrap();
    let max = |rx: &Prescription| {
        rx.target_gy()
            .as_slice()
            .iter()
            .copied()
            .fold(0.0f32, f32::max)
    };
    assert!(max(&a) < max(&raw));
}

#[test]
fn images_from_another_frame_are_resampled_and_checked() {
    let planning = grid([8, 8, 8], [2.0; 3]);
    let gtv = sphere(&planning, "GTV", [7.0, 7.0, 7.0], 4.0);
    // The PET lives in a frame shifted by 5 mm in x.
    let pet_grid = dosepaint_core::Grid::new([12, 10, 10], [2.0; 3], [5.0, -2.0, -2.0]).unwrap();
    let pet = Volume::from_fn(pet_grid, |[i, _, _]| 1.0 + i as f32);
    let to_pet = AffineTransform::translation([5.0, 0.0, 0.0]).unwrap();
    let inputs = MappingInputs::new(gtv, 30)
        .unwrap()
        .with_image_resampled("pet", &pet, Some(&to_pet), OutsideSource::Refuse)
        .unwrap();
    // Planning x = 2 mm -> PET frame x = 7 mm -> PET index 1 -> value 2.
    assert!(close(
        f64::from(inputs.image("pet").unwrap()[[1, 3, 3]]),
        2.0,
        1e-5
    ));
    // Without the transform the PET does not cover x < 4 mm of the planning grid.
    let err = inputs
        .clone()
        .with_image_resampled("pet2", &pet, None, OutsideSource::Refuse)
        .unwrap_err();
    assert!(err.to_string().contains("pet2") && err.to_string().contains("outside"));
    let filled = dosepaint_biomap::resample_to_grid(
        "pet2",
        &pet,
        &planning,
        None,
        dosepaint_core::Interpolation::Linear,
        OutsideSource::Fill(0.0),
    )
    .unwrap();
    assert_eq!(filled.voxels_outside_source, 2 * 8 * 8);
}

// ------------------------------------------------------------------ errors

#[test]
fn image_preparation_functions_follow_their_formulas_and_refuse_bad_input() {
    // A row of 5 voxels of 3 mm; the reference region holds the first three.
    let g = grid([5, 1, 1], [3.0; 3]);
    let img = Volume::from_vec(g.clone(), vec![1.0f32, 2.0, 3.0, 4.0, 10.0]).unwrap();
    let reference = structure_from(
        &g,
        "muscle",
        StructureRole::Other,
        vec![true, true, true, false, false],
    );
    // Closed forms: mean 2, sample sd 1 over {1, 2, 3}.
    let tbr = tumour_to_background(&img, &reference, ReferenceStatistic::Mean).unwrap();
    assert_eq!(tbr.as_slice(), &[0.5, 1.0, 1.5, 2.0, 5.0]);
    let z = z_score(&img, &reference).unwrap();
    assert_eq!(z.as_slice(), &[-1.0, 0.0, 1.0, 2.0, 8.0]);
    assert_eq!(suv_max(&img, &reference).unwrap(), 3.0);
    // 1e-6 mm^2/s (scanner integers) -> mm^2/s.
    let adc = Volume::from_vec(g.clone(), vec![800.0f32, 1500.0, 3000.0, 0.0, 2000.0]).unwrap();
    let mm2 = adc_to_mm2_per_s(&adc, AdcUnit::Micro).unwrap();
    assert!(close(f64::from(mm2.as_slice()[1]), 1.5e-3, 1e-10));

    // Another grid.
    let other = structure(&grid([4, 1, 1], [3.0; 3]), "other", |_| true);
    let e = region_stats(&img, &other).unwrap_err().to_string();
    assert!(e.contains("\"other\""), "{e}");
    // A NaN inside the region names the region and the voxel.
    let mut nan = img.clone();
    nan[[1, 0, 0]] = f32::NAN;
    let e = region_stats(&nan, &reference).unwrap_err();
    assert!(
        matches!(&e, Error::VoxelValue { voxel: [1, 0, 0], what, .. } if what.contains("muscle")),
        "{e}"
    );
    // SUVpeak: a sphere volume that is not positive; a NaN that the sphere
    // reaches outside the region.
    for v in [0.0, -1.0, f64::NAN] {
        let e = suv_peak(&img, &reference, v).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }), "{v}: {e}");
    }
    let mut nan_outside = img.clone();
    nan_outside[[4, 0, 0]] = f32::NAN;
    assert!(suv_peak(&nan_outside, &reference, 1.0).is_err());
    // A background of mean 0 (no ratio), a constant or one-voxel region (no
    // z-score).
    let zero = Volume::from_vec(g.clone(), vec![0.0f32, 0.0, 0.0, 4.0, 10.0]).unwrap();
    let e = tumour_to_background(&zero, &reference, ReferenceStatistic::Mean).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRegion { region, .. } if region == "muscle"),
        "{e}"
    );
    let e = z_score(&zero, &reference).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRegion { region, .. } if region == "muscle"),
        "{e}"
    );
    let one = structure_from(
        &g,
        "one",
        StructureRole::Other,
        vec![false, false, true, false, false],
    );
    let e = z_score(&img, &one).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRegion { region, .. } if region == "one"),
        "{e}"
    );
    // ADC in 1e-6 mm^2/s read as mm^2/s: implausible, the voxel is named;
    // a negative ADC likewise.
    let e = adc_to_mm2_per_s(&adc, AdcUnit::Mm2PerS).unwrap_err();
    assert!(
        matches!(
            e,
            Error::VoxelValue {
                voxel: [0, 0, 0],
                ..
            }
        ),
        "{e}"
    );
    let mut negative = mm2.clone();
    negative[[3, 0, 0]] = -1e-4;
    let e = adc_to_mm2_per_s(&negative, AdcUnit::Mm2PerS).unwrap_err();
    assert!(
        matches!(
            e,
            Error::VoxelValue {
                voxel: [3, 0, 0],
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let inputs = head_and_neck();
    let g = inputs.grid().clone();
    // NaN voxel.
    let mut nan = Volume::filled(g.clone(), 1.0f32);
    nan[[3, 4, 5]] = f32::NAN;
    let e = inputs
        .clone()
        .with_image("fmiso2", nan)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fmiso2") && e.contains("[3, 4, 5]"), "{e}");
    // Another grid.
    let other = Volume::filled(grid([5, 5, 5], [2.0; 3]), 1.0f32);
    let e = inputs
        .clone()
        .with_image("ct", other)
        .unwrap_err()
        .to_string();
    assert!(e.contains("grid mismatch") && e.contains("\"ct\""), "{e}");
    // Missing image and region.
    let linear = |image: ImageSource, i_low: f64, i_high: f64| {
        MappingSpec::Linear(LinearSpec::new(image, i_low, i_high, 70.0, 80.0))
    };
    assert!(matches!(
        linear(ImageSource::new("cu_atsm"), 1.0, 2.0)
            .map(&inputs)
            .unwrap_err(),
        Error::MissingImage { .. }
    ));
    let e = linear(ImageSource::new("fmiso").ratio_to("muscle"), 1.0, 2.0)
        .map(&inputs)
        .unwrap_err();
    assert!(
        matches!(&e, Error::MissingRegion { name, .. } if name == "muscle"),
        "{e}"
    );
    // ADC stored in 1e-6 mm^2/s but declared in mm^2/s.
    let spec = cellularity(adc_density(
        AdcUnit::Mm2PerS,
        Level::Value(0.5e-3),
        1e4,
        1e-3,
    ));
    let e = spec.map(&inputs).unwrap_err().to_string();
    assert!(e.contains("adc") && e.contains("unit"), "{e}");
    // A custom mapping returning a negative dose.
    let bad = VoxelFn::new("bad", [ImageSource::new("fdg")], |v| 5.0 - v.values[0]);
    let e = bad.map(&inputs).unwrap_err();
    assert!(
        matches!(&e, Error::VoxelValue { what, .. } if what.contains("bad")),
        "{e}"
    );
    // Parameters refused at build time.
    let e = linear(ImageSource::new("fdg"), 2.0, 1.0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("i_high"), "{e}");
    let e = MappingSpec::Hypoxia(IsoEffectSpec::new(lq(), 70.0))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("oxygen"), "{e}");
    let e = one_level("x", "fdg", ThresholdRule::Above(1.0), 60.0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("below the base dose"), "{e}");
    // Typos in a spec are caught.
    let e = MappingSpec::from_json(r#"{"kind": "uniform", "dose_gy": 70, "dose_gray": 1}"#)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Spec(m) if m.contains("dose_gray")),
        "{e}"
    );
    let e = MappingSpec::from_json(r#"{"kind": "quadratic"}"#).unwrap_err();
    assert!(matches!(e, Error::Spec(_)));
    // An empty target.
    let empty = Structure::new("GTV", StructureRole::Target, Volume::filled(g, false)).unwrap();
    assert!(MappingInputs::new(empty, 35).is_err());
    // Zero fractions.
    assert!(inputs.clone().with_fractions(0).is_err());
}

/// Piecewise dose tables and pO2 calibration tables share one table check:
/// at least two points, finite and strictly increasing abscissae, valid
/// ordinates; a pO2 table also must not rise with uptake. Each is refused
/// when the mapping is built, naming the table and the point.
#[test]
fn bad_tables_are_refused_at_build_time() {
    let piecewise = |points: Vec<[f64; 2]>| {
        MappingSpec::Piecewise(PiecewiseSpec {
            image: ImageSource::new("fdg"),
            points,
            base_dose_gy: None,
            floor_gy: None,
            cap_gy: None,
        })
        .build()
        .map(|_| ())
    };
    let refused = |built: Result<(), Error>| built.unwrap_err().to_string();
    assert!(piecewise(vec![[1.0, 70.0], [2.0, 80.0]]).is_ok());
    let e = refused(piecewise(vec![[1.0, 70.0]]));
    assert!(
        e.contains("piecewise") && e.contains("at least 2 points"),
        "{e}"
    );
    let e = refused(piecewise(vec![[1.0, 70.0], [1.0, 80.0]]));
    assert!(
        e.contains("increase strictly") && e.contains("point 1"),
        "{e}"
    );
    let e = refused(piecewise(vec![[1.0, 70.0], [2.0, -1.0]]));
    assert!(e.contains("point 1 dose"), "{e}");
    let e = refused(piecewise(vec![[f64::NAN, 70.0], [2.0, 80.0]]));
    assert!(e.contains("point 0 image value"), "{e}");

    let hypoxia = |points: Vec<[f64; 2]>| {
        let mut spec = IsoEffectSpec::new(lq(), 70.0);
        spec.oxygen = Some(OxygenSpec {
            po2: Po2Model::Table { points },
            ..oxygen(None)
        });
        MappingSpec::Hypoxia(spec).build().map(|_| ())
    };
    assert!(hypoxia(vec![[1.0, 60.0], [1.5, 10.0], [3.0, 0.0]]).is_ok());
    let e = refused(hypoxia(vec![[1.0, 60.0], [1.5, 70.0]]));
    assert!(
        e.contains("pO2 table") && e.contains("must not increase"),
        "{e}"
    );
    let e = refused(hypoxia(vec![[1.5, 60.0], [1.0, 10.0]]));
    assert!(e.contains("uptake must increase strictly"), "{e}");
    let e = refused(hypoxia(vec![[1.0, 60.0], [1.5, -1.0]]));
    assert!(e.contains("pO2 table point 1 pO2"), "{e}");
}
