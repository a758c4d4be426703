//! Integration tests of the water box and the TG-119 C-shape.

use std::time::Instant;

use dosepaint_core::{Structure, StructureRole};
use dosepaint_phantom::{
    Error, GoalKind, GoalMetric, Phantom, TargetShape, WaterBoxParams, tg119, tg119_with_spacing,
    water_box,
};

/// Smallest centre-to-centre distance (mm) between voxels of two structures
/// (brute force over boundary-ish voxels is enough for these sizes).
/// Equality of two points or spacings to 1e-12 mm.
fn close3(a: [f64; 3], b: [f64; 3]) -> bool {
    (0..3).all(|c| (a[c] - b[c]).abs() < 1e-12)
}

fn min_distance_mm(a: &Structure, b: &Structure) -> f64 {
    let g = a.grid();
    let pa: Vec<_> = a
        .voxel_indices()
        .iter()
        .map(|&n| g.voxel_center(g.voxel_index(n as usize)))
        .collect();
    let pb: Vec<_> = b
        .voxel_indices()
        .iter()
        .map(|&n| g.voxel_center(g.voxel_index(n as usize)))
        .collect();
    let mut best = f64::INFINITY;
    for p in &pa {
        for q in &pb {
            let d2: f64 = (0..3).map(|c| (p[c] - q[c]).powi(2)).sum();
            best = best.min(d2);
        }
    }
    best.sqrt()
}

fn is_subset(inner: &Structure, outer: &Structure) -> bool {
    inner.difference(outer).unwrap().is_empty()
}

#[test]
fn tg119_reference_resolution_volumes_and_geometry() {
    let t0 = Instant::now();
    let p = tg119().unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    // Speed sanity in the dev profile (opt-level 1): 3.6 M voxels.
    assert!(elapsed < 10.0, "tg119() took {elapsed} s");

    assert_eq!(p.grid().dims(), [167, 167, 129]);
    assert!(close3(p.grid().spacing_mm(), [3.0, 3.0, 2.5]));
    // /work/shared/reference/tg119.md: matRad/CORT version, target about
    // 168 cm^3 and core about 30 cm^3 at 3 x 3 x 2.5 mm (within 10 %).
    let ptv = p.structure("PTV").unwrap();
    let core = p.structure("Core").unwrap();
    let body = p.structure("Body").unwrap();
    assert!(
        (ptv.volume_cm3() - 168.0).abs() < 16.8,
        "PTV {} cm^3",
        ptv.volume_cm3()
    );
    assert!(
        (core.volume_cm3() - 30.0).abs() < 3.0,
        "core {} cm^3",
        core.volume_cm3()
    );
    assert_eq!(ptv.role(), StructureRole::Target);
    assert_eq!(core.role(), StructureRole::OrganAtRisk);
    assert_eq!(body.role(), StructureRole::External);
    assert!(core.intersection(ptv).unwrap().is_empty());
    assert!(is_subset(ptv, body) && is_subset(core, body));
    // Water box of 300 mm per side: |x|, |y| <= 150 mm on a 3 mm grid
    // centred at 0 holds 101 voxel centres per axis, |z| <= 150 mm on 2.5 mm
    // holds 121.
    assert_eq!(body.voxel_count(), 101 * 101 * 121);

    // CT: water inside the body, air outside.
    for (&hu, &b) in p.ct.as_slice().iter().zip(body.mask().as_slice()) {
        let expected = if b { 0.0 } else { -1000.0 };
        assert!((hu - expected).abs() < 1e-6);
    }

    // The gap between core and C: 5 mm nominal; voxel centres 3 mm apart
    // can bring them no closer than about 3 mm, never touching.
    let gap = min_distance_mm(core, ptv);
    assert!((3.0..=8.0).contains(&gap), "gap {gap} mm");
}

#[test]
fn tg119_beams_intent_and_isocenter() {
    let p = tg119_with_spacing([5.0, 5.0, 5.0]).unwrap();
    let angles: Vec<f64> = p
        .beams
        .iter()
        .map(dosepaint_core::Beam::gantry_deg)
        .collect();
    // TG-119: 9 equally spaced coplanar beams 0, 40, ..., 320.
    assert_eq!(angles.len(), 9);
    for (b, g) in angles.iter().enumerate() {
        assert!((g - 40.0 * b as f64).abs() < 1e-9);
    }
    assert_eq!(p.beams[1].name(), "G040");
    for b in &p.beams {
        assert!(close3(b.isocenter_mm(), p.isocenter_mm));
        assert!(b.couch_deg().abs() < 1e-12);
    }
    // The C opens anteriorly (-y), so the target centroid lies posterior
    // (+y) of the core axis, on the mid-sagittal plane, at z = 0.
    let iso = p.isocenter_mm;
    assert!(iso[0].abs() < 1e-6 && iso[2].abs() < 1e-6, "{iso:?}");
    assert!(iso[1] > 5.0 && iso[1] < 25.0, "{iso:?}");
    // Intent: 50 Gy in 25 fractions; TG-119 goals (reference/tg119.md).
    assert_eq!(p.intent.fractions, 25);
    assert!((p.intent.base_dose_gy - 50.0).abs() < 1e-12);
    let core_goal = p
        .intent
        .goals
        .iter()
        .find(|g| g.structure == "Core")
        .unwrap();
    assert_eq!(core_goal.kind, GoalKind::AtMost);
    assert_eq!(core_goal.metric, GoalMetric::DoseAtVolumePercent(10.0));
    assert!((core_goal.limit_gy - 25.0).abs() < 1e-12);
    for g in &p.intent.goals {
        p.structure(&g.structure).unwrap();
    }
    let rx = p.uniform_prescription().unwrap();
    assert_eq!(rx.fractions(), 25);
    let ptv = p.structure("PTV").unwrap();
    assert_eq!(rx.prescribed_voxels(), ptv.voxel_indices());
    assert!(rx.target_gy().stats().max > 49.99);
}

#[test]
fn tg119_spacing_is_validated() {
    for bad in [
        [0.0, 3.0, 3.0],
        [3.0, f64::NAN, 3.0],
        [3.0, 3.0, -1.0],
        [3.0, 3.0, 50.0],
        [0.05, 0.05, 0.05],
    ] {
        match tg119_with_spacing(bad) {
            Err(Error::InvalidParameter { what, .. }) => assert_eq!(what, "spacing_mm"),
            other => panic!("{bad:?}: expected InvalidParameter, got {other:?}"),
        }
    }
}

#[test]
fn tg119_is_deterministic_and_round_trips_through_json() {
    let a = tg119_with_spacing([8.0, 8.0, 8.0]).unwrap();
    let b = tg119_with_spacing([8.0, 8.0, 8.0]).unwrap();
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    let back: Phantom = serde_json::from_str(&json).unwrap();
    assert_eq!(a, back);
}

#[test]
fn unknown_structure_lists_available_names() {
    let p = tg119_with_spacing([8.0, 8.0, 8.0]).unwrap();
    let err = p.structure("Rectum").unwrap_err();
    match &err {
        Error::UnknownStructure {
            name, available, ..
        } => {
            assert_eq!(name, "Rectum");
            assert_eq!(available, "Body, PTV, Core");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("Body, PTV, Core"));
    assert!(p.image(dosepaint_phantom::ImageKind::FmisoTbr).is_err());
}

#[test]
fn water_box_defaults() {
    let t0 = Instant::now();
    let p = water_box(&WaterBoxParams::default()).unwrap();
    assert!(t0.elapsed().as_secs_f64() < 2.0);
    // 200 mm box + 2 x 20 mm air at 4 mm: 60 -> 61 voxels (odd, centred).
    assert_eq!(p.grid().dims(), [61, 61, 61]);
    let body = p.structure("Body").unwrap();
    let ptv = p.structure("PTV").unwrap();
    // |x| <= 100 mm on a 4 mm grid centred at 0: 51 centres per axis.
    assert_eq!(body.voxel_count(), 51 * 51 * 51);
    assert_eq!(ptv.voxel_count(), 11 * 11 * 11);
    assert!(is_subset(ptv, body));
    let s = p.ct.stats();
    assert!((s.min + 1000.0).abs() < 1e-9 && s.max.abs() < 1e-9);
    assert_eq!(p.beams.len(), 5);
    assert!(p.isocenter_mm.iter().all(|c| c.abs() < 1e-9));
    assert_eq!(p.intent.fractions, 30);
    assert!(p.images.kinds().is_empty());
}

#[test]
fn water_box_ellipsoid_volume_and_offset_target() {
    // A sphere of 60 mm diameter (113.1 cm^3) at 2 mm spacing: voxelisation
    // error of a sphere of radius 15 voxels is well under 3 %.
    let p = water_box(&WaterBoxParams {
        box_size_mm: [120.0, 120.0, 120.0],
        spacing_mm: [2.0; 3],
        target_shape: TargetShape::Ellipsoid,
        target_size_mm: [60.0; 3],
        target_center_mm: [10.0, -5.0, 0.0],
        beam_angles_deg: vec![90.0],
        ..WaterBoxParams::default()
    })
    .unwrap();
    let v = p.structure("PTV").unwrap().volume_cm3();
    let exact = 4.0 / 3.0 * std::f64::consts::PI * 30.0f64.powi(3) * 1e-3;
    assert!((v - exact).abs() < 0.03 * exact, "{v} vs {exact}");
    // The isocentre is the target centroid.
    let iso = p.isocenter_mm;
    assert!((iso[0] - 10.0).abs() < 1e-6 && (iso[1] + 5.0).abs() < 1e-6);
    assert_eq!(p.beams.len(), 1);
    assert!((p.beams[0].gantry_deg() - 90.0).abs() < 1e-12);
}

#[test]
fn water_box_rejects_bad_parameters() {
    let cases: Vec<(WaterBoxParams, &str)> = vec![
        (
            WaterBoxParams {
                box_size_mm: [0.0, 100.0, 100.0],
                ..WaterBoxParams::default()
            },
            "box_size_mm",
        ),
        (
            WaterBoxParams {
                air_margin_mm: -1.0,
                ..WaterBoxParams::default()
            },
            "air_margin_mm",
        ),
        (
            WaterBoxParams {
                spacing_mm: [4.0, 4.0, f64::INFINITY],
                ..WaterBoxParams::default()
            },
            "spacing_mm",
        ),
        (
            WaterBoxParams {
                target_center_mm: [90.0, 0.0, 0.0],
                ..WaterBoxParams::default()
            },
            "target_center_mm",
        ),
        (
            WaterBoxParams {
                target_size_mm: [f64::NAN, 10.0, 10.0],
                ..WaterBoxParams::default()
            },
            "target_size_mm",
        ),
        (
            WaterBoxParams {
                beam_angles_deg: vec![0.0, f64::NAN],
                ..WaterBoxParams::default()
            },
            "beam_angles_deg",
        ),
        (
            WaterBoxParams {
                dose_gy: -60.0,
                ..WaterBoxParams::default()
            },
            "dose_gy",
        ),
        (
            WaterBoxParams {
                fractions: 0,
                ..WaterBoxParams::default()
            },
            "fractions",
        ),
    ];
    for (params, field) in cases {
        match water_box(&params) {
            Err(Error::InvalidParameter { what, .. }) => assert_eq!(what, field),
            other => panic!("{field}: expected InvalidParameter, got {other:?}"),
        }
    }
    // A target too small for any voxel centre is an EmptyStructure error.
    let tiny = WaterBoxParams {
        target_size_mm: [1.0; 3],
        target_center_mm: [2.0, 2.0, 2.0],
        ..WaterBoxParams::default()
    };
    assert!(matches!(
        water_box(&tiny),
        Err(Error::EmptyStructure { .. })
    ));
}

mod properties {
    use dosepaint_core::{Grid, Volume};
    use dosepaint_phantom::{
        TargetShape, WaterBoxParams, gaussian_blur, linear_dpbn_gy, tg119_with_spacing, water_box,
    };
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

        /// At any spacing the C and the core stay disjoint, inside the body,
        /// and close to their nominal volumes (159 and 28.3 cm^3; coarse
        /// voxel-centre sampling adds up to about a third).
        #[test]
        fn tg119_relations_hold_at_any_spacing(
            sx in 3.0f64..9.0, sy in 3.0f64..9.0, sz in 2.5f64..9.0
        ) {
            let p = tg119_with_spacing([sx, sy, sz]).unwrap();
            let ptv = p.structure("PTV").unwrap();
            let core = p.structure("Core").unwrap();
            let body = p.structure("Body").unwrap();
            prop_assert!(core.intersection(ptv).unwrap().is_empty());
            prop_assert!(ptv.difference(body).unwrap().is_empty());
            prop_assert!(core.difference(body).unwrap().is_empty());
            prop_assert!((ptv.volume_cm3() / 159.4 - 1.0).abs() < 0.35, "{}", ptv.volume_cm3());
            prop_assert!((core.volume_cm3() / 28.27 - 1.0).abs() < 0.6, "{}", core.volume_cm3());
        }

        /// The water-box target is centred where asked (to half a voxel) and
        /// lies inside the body.
        #[test]
        fn water_box_target_is_where_asked(
            cx in -40.0f64..40.0, cy in -40.0f64..40.0, cz in -40.0f64..40.0,
            size in 12.0f64..60.0, ellipsoid in any::<bool>()
        ) {
            let p = water_box(&WaterBoxParams {
                target_center_mm: [cx, cy, cz],
                target_size_mm: [size; 3],
                target_shape: if ellipsoid { TargetShape::Ellipsoid } else { TargetShape::Cuboid },
                ..WaterBoxParams::default()
            }).unwrap();
            let ptv = p.structure("PTV").unwrap();
            prop_assert!(ptv.difference(p.structure("Body").unwrap()).unwrap().is_empty());
            for (a, c) in [cx, cy, cz].into_iter().enumerate() {
                prop_assert!((p.isocenter_mm[a] - c).abs() <= 2.0 + 1e-9);
            }
        }

        /// The linear DPbN map is monotone and stays within [D_low, D_high].
        #[test]
        fn linear_dpbn_is_monotone_and_bounded(
            a in -1.0f64..4.0, b in -1.0f64..4.0, lo in 0.5f64..1.5, width in 0.1f64..2.0
        ) {
            let (i1, i2) = if a <= b { (a, b) } else { (b, a) };
            let d1 = linear_dpbn_gy(i1, lo, lo + width, 70.0, 84.0);
            let d2 = linear_dpbn_gy(i2, lo, lo + width, 70.0, 84.0);
            prop_assert!(d1 <= d2 + 1e-12);
            prop_assert!((70.0..=84.0).contains(&d1) && (70.0..=84.0).contains(&d2));
        }

        /// Blurring is linear and preserves the mass of an interior point.
        #[test]
        fn blur_is_linear_and_mass_preserving(
            i in 8usize..16, j in 8usize..16, k in 8usize..12,
            fx in 0.0f64..6.0, fy in 0.0f64..6.0, fz in 0.0f64..6.0, w in 0.1f32..5.0
        ) {
            let grid = Grid::new([24, 24, 20], [1.5, 2.0, 2.5], [0.0; 3]).unwrap();
            let mut a = Volume::filled(grid.clone(), 0.0f32);
            a[[i, j, k]] = w;
            let b = Volume::from_fn(grid, |[x, y, z]| ((x + 2 * y + 3 * z) % 7) as f32);
            let fwhm = [fx, fy, fz];
            let ba = gaussian_blur(&a, fwhm).unwrap();
            let bb = gaussian_blur(&b, fwhm).unwrap();
            let sum = a.zip_map(&b, |x, y| x + y).unwrap();
            let bsum = gaussian_blur(&sum, fwhm).unwrap();
            for ((s, x), y) in bsum.as_slice().iter().zip(ba.as_slice()).zip(bb.as_slice()) {
                prop_assert!((s - (x + y)).abs() < 1e-4);
            }
            let mass: f64 = ba.as_slice().iter().map(|&v| f64::from(v)).sum();
            prop_assert!((mass - f64::from(w)).abs() < 1e-4 * f64::from(w).max(1.0));
        }
    }
}
