//! Criterion benchmarks of dose-painting mappings over a 256 x 256 x 128 image
//! (8.4 million voxels, 1 x 1 x 2 mm): target < 50 ms per mapping on 2 cores.
//!
//! Two painted targets on the same image:
//! - `bulky`: a bulky head-and-neck-sized tumour, GTV sphere of radius 40 mm
//!   (268 cm^3, 134 000 voxels) in a PTV of radius 50 mm;
//! - `stress`: a central ellipsoid of semi-axes 100 x 100 x 110 mm (3.8 million
//!   voxels, 45 % of the image) in a base region 10 mm larger, so that the
//!   per-voxel work dominates.
//!
//! The images are smooth synthetic FDG, FMISO and ADC maps with a blood-pool
//! region for the FMISO ratio.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_biomap::{
    AdcUnit, AlphaBetaMap, Conserve, ContourLevelSpec, ContourSpec, Delivered, DensitySpec,
    DoseMapping, ExcessPolicy, ImageSource, IsoEffectSpec, Level, LinearSpec, MappingInputs,
    MappingSpec, MaxSpec, Normalization, OxygenSpec, Po2Model, RedistributeSpec, Rescale,
    SigmoidSpec, TargetStatistic, ThresholdRule, gaussian_smooth, represcribe,
};
use dosepaint_core::{Grid, Structure, StructureRole, Volume};
use dosepaint_radiobio::{LqParams, OerModel};

fn inputs(stress: bool) -> MappingInputs {
    let grid = Grid::new([256, 256, 128], [1.0, 1.0, 2.0], [-127.5, -127.5, -127.0]).unwrap();
    let r2 = |[i, j, k]: [usize; 3], a: f64, c: f64| {
        let p = grid.voxel_center([i, j, k]);
        (p[0] * p[0] + p[1] * p[1]) / (a * a) + p[2] * p[2] / (c * c)
    };
    let (gtv_axes, ptv_axes) = if stress {
        ((100.0, 110.0), (110.0, 120.0))
    } else {
        ((40.0, 40.0), (50.0, 50.0))
    };
    let gtv = Structure::new(
        "GTV",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |v| r2(v, gtv_axes.0, gtv_axes.1) <= 1.0),
    )
    .unwrap();
    let ptv = Structure::new(
        "PTV",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |v| r2(v, ptv_axes.0, ptv_axes.1) <= 1.0),
    )
    .unwrap();
    let blood = Structure::new(
        "aorta",
        StructureRole::Other,
        Volume::from_fn(grid.clone(), |[i, j, _]| i < 8 && j < 8),
    )
    .unwrap();
    let wave = |[i, j, k]: [usize; 3]| {
        ((i as f64) * 0.07).sin() * ((j as f64) * 0.05).cos() + ((k as f64) * 0.11).sin()
    };
    let (a, c) = gtv_axes;
    let fdg = Volume::from_fn(grid.clone(), |v| {
        (8.0 * (1.0 - r2(v, a, c)).max(0.0) + 1.0 + 0.5 * wave(v)) as f32
    });
    let fmiso = Volume::from_fn(grid.clone(), |v| {
        (1.0 + 1.2 * (1.0 - r2(v, a, c)).max(0.0) + 0.1 * wave(v)) as f32
    });
    let adc = Volume::from_fn(grid.clone(), |v| {
        (800.0 + 900.0 * r2(v, a, c).min(1.5) + 100.0 * wave(v)) as f32
    });
    MappingInputs::new(gtv, 35)
        .unwrap()
        .with_base_region(ptv)
        .unwrap()
        .with_region("blood", blood)
        .unwrap()
        .with_image("fdg", fdg)
        .unwrap()
        .with_image("fmiso", fmiso)
        .unwrap()
        .with_image("adc", adc)
        .unwrap()
}

fn linear() -> MappingSpec {
    MappingSpec::Linear(
        LinearSpec::new(
            ImageSource::new("fmiso").ratio_to("blood"),
            1.2,
            2.0,
            70.0,
            84.0,
        )
        .with_base_dose(70.0),
    )
}

fn contours() -> MappingSpec {
    let mut fdg50 = ContourLevelSpec::new(
        "BTV_FDG50",
        ImageSource::new("fdg"),
        ThresholdRule::FractionOfMax(0.5),
        77.0,
    );
    fdg50.min_volume_cm3 = 1.0;
    fdg50.margin_mm = 3.0.into();
    MappingSpec::Contours(ContourSpec::new(70.0, vec![fdg50]))
}

fn hypoxia() -> IsoEffectSpec {
    let mut s = IsoEffectSpec::new(LqParams::new(0.35, 0.035).unwrap(), 70.0);
    s.oxygen = Some(OxygenSpec {
        image: ImageSource::new("fmiso").ratio_to("blood"),
        po2: Po2Model::Binding {
            uptake_oxic: 1.0,
            uptake_anoxic: 3.0,
            k_mmhg: 1.4,
            max_po2_mmhg: 60.0,
        },
        oer: OerModel::carlson_2006(),
        modifier: None,
    });
    s.base_dose_gy = Some(70.0);
    s.cap_gy = Some(90.0);
    s
}

fn cases() -> Vec<(&'static str, MappingSpec)> {
    vec![
        ("linear_fmiso_tbr", linear()),
        (
            "linear_fmiso_tbr_smoothed_fwhm6mm",
            MappingSpec::Linear(
                LinearSpec::new(
                    ImageSource::new("fmiso").smoothed(6.0).ratio_to("blood"),
                    1.2,
                    2.0,
                    70.0,
                    84.0,
                )
                .with_base_dose(70.0),
            ),
        ),
        (
            "sigmoid_fdg_median",
            MappingSpec::Sigmoid(SigmoidSpec {
                image: ImageSource::new("fdg"),
                i_50: Level::Statistic(TargetStatistic::Median),
                width: 0.5,
                d_low_gy: 70.0,
                d_high_gy: 84.0,
                base_dose_gy: Some(70.0),
                floor_gy: None,
                cap_gy: None,
            }),
        ),
        ("contours_fdg50_margin3", contours()),
        ("hypoxia_iso_effect", MappingSpec::Hypoxia(hypoxia())),
        ("hypoxia_and_cellularity_iso_effect", {
            let mut s = hypoxia();
            s.density = Some(DensitySpec {
                image: ImageSource::new("adc").normalized(Normalization::Adc {
                    unit: AdcUnit::Micro,
                }),
                adc_water_mm2_s: 3.0e-3,
                adc_min_mm2_s: Level::Statistic(TargetStatistic::Min),
                rho_max_per_cm3: 1e7,
                rho_min_per_cm3: 1e4,
                reference_adc_mm2_s: Level::Statistic(TargetStatistic::Median),
            });
            MappingSpec::IsoEffect(s)
        }),
        (
            "max_linear_fmiso_and_fdg_contours",
            MappingSpec::Max(MaxSpec {
                mappings: vec![linear(), contours()],
            }),
        ),
        (
            "redistribute_linear_mean_74_floor_cap",
            MappingSpec::Redistribute(RedistributeSpec {
                mapping: Box::new(linear()),
                reference_dose_gy: 74.0,
                conserve: Conserve::MeanTargetDose,
                reference_base_dose_gy: None,
                rescale: Rescale::Proportional,
                floor_gy: Some(60.0),
                cap_gy: Some(80.0),
            }),
        ),
    ]
}

fn run(c: &mut Criterion, label: &str, stress: bool) {
    let inputs = inputs(stress);
    let mut group = c.benchmark_group(format!("biomap_256x256x128_{label}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, spec) in cases() {
        let mapping = spec.build().unwrap();
        group.bench_function(name, |b| {
            b.iter(|| black_box(mapping.map(black_box(&inputs)).unwrap()));
        });
    }
    let intent = linear().build().unwrap().map(&inputs).unwrap();
    let delivered = Delivered::Physical {
        dose_gy: intent.target_gy().map(|&d| d * 10.0 / 35.0),
        fractions: 10,
    };
    group.bench_function("adaptive_represcribe_10_of_35", |b| {
        b.iter(|| {
            black_box(
                represcribe(
                    &intent,
                    &delivered,
                    &AlphaBetaMap::Uniform(10.0),
                    ExcessPolicy::Refuse,
                )
                .unwrap(),
            )
        });
    });
    if !stress {
        let fmiso = inputs.image("fmiso").unwrap().clone();
        group.bench_function("gaussian_smooth_fwhm6mm_whole_image", |b| {
            b.iter(|| black_box(gaussian_smooth(black_box(&fmiso), [6.0; 3]).unwrap()));
        });
    }
    group.finish();
}

fn biomap(c: &mut Criterion) {
    run(c, "bulky", false);
    run(c, "stress", true);
}

criterion_group!(benches, biomap);
criterion_main!(benches);
