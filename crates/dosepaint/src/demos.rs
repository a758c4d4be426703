//! The built-in demonstration plans on the phantoms (`dosepaint demo`).

use dosepaint_biomap::{
    ContourLevelSpec, ContourSpec, ImageSource, LinearSpec, MappingSpec, MaxSpec, ThresholdRule,
    UniformSpec,
};
use dosepaint_mlc::{Algorithm, SequencerParams};
use dosepaint_optim::Settings;

use crate::spec::{
    BeamSpec, DoseSpec, EvaluationSpec, InputSpec, Isocenter, NormalizeSpec, NtcpSpec,
    ObjectiveSpec, OutputSpec, PhantomCase, PlanSpec, PrescriptionSpec, SequencingSpec, TcpSpec,
};

/// `n` equally spaced coplanar beams with the isocentre at the PTV's
/// centroid, bixels covering the PTV.
fn coplanar_around_ptv(n: usize, bixel_width_mm: f64) -> BeamSpec {
    BeamSpec {
        gantry_deg: (0..n).map(|k| 360.0 * k as f64 / n as f64).collect(),
        couch_deg: 0.0,
        collimator_deg: 0.0,
        isocenter: Isocenter::CentroidOf("PTV".into()),
        bixel_width_mm,
        targets: vec!["PTV".into()],
    }
}

fn lkb(structure: &str, td50_gy: f64, m: f64, n: f64, source: &str) -> NtcpSpec {
    NtcpSpec {
        structure: structure.into(),
        td50_gy,
        m,
        n,
        source: source.into(),
    }
}

/// The built-in plan for a phantom case, writing to `out`.
pub fn demo_spec(case: PhantomCase) -> PlanSpec {
    match case {
        PhantomCase::HeadNeck => head_neck(),
        PhantomCase::Tg119 => tg119(),
        PhantomCase::Box => water_box(),
    }
}

/// Head and neck: dose painting by numbers from FMISO (tumour-to-blood ratio
/// 1.3 -> 70 Gy, 2.0 -> 84 Gy inside the GTV; 70 Gy in the rest of the PTV;
/// Lee et al. 2008) with a simultaneous FDG contour boost (50 % of SUVmax ->
/// 80 Gy, the dose level of the Ghent DPbN trial's maximum tolerated dose),
/// 35 fractions, 9 coplanar beams of 4 mm bixels. The dose-painting quality
/// is judged over the painted GTV.
fn head_neck() -> PlanSpec {
    let mapping = MappingSpec::Max(MaxSpec {
        mappings: vec![
            MappingSpec::Linear(
                LinearSpec::new(ImageSource::new("fmiso"), 1.3, 2.0, 70.0, 84.0)
                    .with_base_dose(70.0),
            ),
            MappingSpec::Contours(ContourSpec::new(
                70.0,
                vec![ContourLevelSpec::new(
                    "BTV_FDG50",
                    ImageSource::new("fdg"),
                    ThresholdRule::FractionOfMax(0.5),
                    80.0,
                )],
            )),
        ],
    });
    PlanSpec {
        name: "head-neck FMISO DPbN + FDG SIB".into(),
        inputs: InputSpec::Phantom {
            case: PhantomCase::HeadNeck,
            spacing_mm: None,
        },
        prescription: PrescriptionSpec {
            fractions: 35,
            target: "GTV".into(),
            base_region: Some("PTV".into()),
            regions: Vec::new(),
            mapping,
        },
        beams: coplanar_around_ptv(9, 4.0),
        dose: DoseSpec {
            grid_spacing_mm: [3.0, 3.0, 3.0],
            ..DoseSpec::default()
        },
        objectives: vec![
            ObjectiveSpec::Prescription {
                structure: None,
                weight: 1.0,
                relative: false,
            },
            ObjectiveSpec::Prescription {
                structure: Some("GTV".into()),
                weight: 10.0,
                relative: false,
            },
            ObjectiveSpec::Underdose {
                structure: "PTV".into(),
                limit_gy: 68.0,
                weight: 5.0,
            },
            ObjectiveSpec::MeanDose {
                structure: "Parotid_L".into(),
                limit_gy: 20.0,
                weight: 1.0,
            },
            ObjectiveSpec::MeanDose {
                structure: "Parotid_R".into(),
                limit_gy: 20.0,
                weight: 1.0,
            },
            ObjectiveSpec::MaxDose {
                structure: "SpinalCord".into(),
                limit_gy: 38.0,
                weight: 10.0,
            },
            ObjectiveSpec::Ring {
                around: vec!["PTV".into()],
                inner_mm: 9.0,
                limit_gy: 45.0,
                weight: 0.5,
            },
        ],
        optimizer: Settings {
            max_iterations: 300,
            ..Settings::default()
        },
        normalize: None,
        sequencing: SequencingSpec {
            sequencer: SequencerParams::new(Algorithm::Engel, 10),
            compare_levels: vec![5, 10, 20],
            ..SequencingSpec::default()
        },
        goals: vec![
            "PTV D95 >= 66.5 Gy".into(),
            "GTV D98 >= 68.6 Gy".into(),
            "Parotid_L mean < 26 Gy".into(),
            "Parotid_R mean < 26 Gy".into(),
            "SpinalCord max < 45 Gy".into(),
        ],
        evaluation: EvaluationSpec {
            quality_region: Some("GTV".into()),
            ntcp: vec![
                lkb("Parotid_L", 39.9, 0.40, 1.0, "QUANTEC, Deasy et al. 2010"),
                lkb("Parotid_R", 39.9, 0.40, 1.0, "QUANTEC, Deasy et al. 2010"),
                lkb("SpinalCord", 66.5, 0.175, 0.05, "Burman et al. 1991"),
            ],
            tcp: vec![TcpSpec {
                structure: "GTV".into(),
                alpha_per_gy: 0.25,
                alpha_beta_gy: 10.0,
                clonogens_per_cm3: 1e7,
                source: "illustrative head-and-neck values (alpha 0.25/Gy, 1e7 clonogens/cm3)"
                    .into(),
            }],
            ..EvaluationSpec::default()
        },
        outputs: OutputSpec::default(),
        base_dir: std::path::PathBuf::default(),
    }
}

/// AAPM TG-119 C-shape: 50 Gy in 25 fractions, 9 beams, normalised to PTV
/// D95 = 50 Gy (Ezzell et al. 2009).
fn tg119() -> PlanSpec {
    PlanSpec {
        name: "TG-119 C-shape".into(),
        inputs: InputSpec::Phantom {
            case: PhantomCase::Tg119,
            spacing_mm: None,
        },
        prescription: PrescriptionSpec {
            fractions: 25,
            target: "PTV".into(),
            base_region: None,
            regions: Vec::new(),
            mapping: MappingSpec::Uniform(UniformSpec {
                dose_gy: 50.0,
                base_dose_gy: None,
            }),
        },
        beams: coplanar_around_ptv(9, 5.0),
        dose: DoseSpec {
            grid_spacing_mm: [5.0, 5.0, 5.0],
            ..DoseSpec::default()
        },
        objectives: vec![
            ObjectiveSpec::Uniform {
                structure: "PTV".into(),
                dose_gy: 50.0,
                weight: 1.0,
            },
            ObjectiveSpec::Underdose {
                structure: "PTV".into(),
                limit_gy: 49.0,
                weight: 10.0,
            },
            ObjectiveSpec::Overdose {
                structure: "PTV".into(),
                limit_gy: 52.0,
                weight: 10.0,
            },
            ObjectiveSpec::Overdose {
                structure: "Core".into(),
                limit_gy: 15.0,
                weight: 2.0,
            },
            ObjectiveSpec::Ring {
                around: vec!["PTV".into()],
                inner_mm: 8.0,
                limit_gy: 25.0,
                weight: 0.5,
            },
        ],
        optimizer: Settings {
            max_iterations: 300,
            ..Settings::default()
        },
        normalize: Some(NormalizeSpec {
            structure: "PTV".into(),
            volume_percent: 95.0,
            dose_gy: 50.0,
        }),
        sequencing: SequencingSpec {
            sequencer: SequencerParams::new(Algorithm::Engel, 10),
            compare_levels: vec![5, 10, 20],
            ..SequencingSpec::default()
        },
        goals: vec![
            "PTV D95 >= 49.99 Gy".into(),
            "PTV D10 < 55 Gy".into(),
            "Core D10 < 25 Gy".into(),
            "Core D10 < 10 Gy".into(),
        ],
        evaluation: EvaluationSpec::default(),
        outputs: OutputSpec::default(),
        base_dir: std::path::PathBuf::default(),
    }
}

/// A water box with a cubic target: 60 Gy in 30 fractions, 5 beams.
fn water_box() -> PlanSpec {
    PlanSpec {
        name: "water box".into(),
        inputs: InputSpec::Phantom {
            case: PhantomCase::Box,
            spacing_mm: None,
        },
        prescription: PrescriptionSpec {
            fractions: 30,
            target: "PTV".into(),
            base_region: None,
            regions: Vec::new(),
            mapping: MappingSpec::Uniform(UniformSpec {
                dose_gy: 60.0,
                base_dose_gy: None,
            }),
        },
        beams: coplanar_around_ptv(5, 5.0),
        dose: DoseSpec {
            grid_spacing_mm: [4.0, 4.0, 4.0],
            ..DoseSpec::default()
        },
        objectives: vec![
            ObjectiveSpec::Uniform {
                structure: "PTV".into(),
                dose_gy: 60.0,
                weight: 1.0,
            },
            ObjectiveSpec::Ring {
                around: vec!["PTV".into()],
                inner_mm: 8.0,
                limit_gy: 30.0,
                weight: 0.5,
            },
        ],
        optimizer: Settings {
            max_iterations: 200,
            ..Settings::default()
        },
        normalize: None,
        sequencing: SequencingSpec::default(),
        goals: vec!["PTV D95 >= 57 Gy".into(), "PTV max < 66 Gy".into()],
        evaluation: EvaluationSpec::default(),
        outputs: OutputSpec::default(),
        base_dir: std::path::PathBuf::default(),
    }
}
