//! Integration tests of dosepaint-core: invariants (proptest), closed forms
//! and every error path.

use approx::assert_relative_eq;
use dosepaint_core::*;
use proptest::prelude::*;

fn grid(dims: [usize; 3], spacing: [f64; 3]) -> Grid {
    Grid::new(dims, spacing, [-10.0, 5.0, 2.5]).unwrap()
}

fn rotated_grid() -> Grid {
    // Rows: i along (cos 30, sin 30, 0), j along (-sin 30, cos 30, 0), k along z.
    let (s, c) = 30f64.to_radians().sin_cos();
    Grid::with_direction(
        [7, 6, 5],
        [1.5, 2.0, 2.5],
        [3.0, -4.0, 1.0],
        [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap()
}

// ---------------------------------------------------------------- Grid

proptest! {
    #[test]
    fn index_world_index_round_trip(i in 0.0f64..50.0, j in 0.0f64..50.0, k in 0.0f64..50.0) {
        for g in [grid([50, 50, 50], [0.97, 1.3, 2.5]), rotated_grid()] {
            let p = g.index_to_patient([i, j, k]);
            let back = g.patient_to_index(p);
            prop_assert!((back[0] - i).abs() < 1e-9 && (back[1] - j).abs() < 1e-9 && (back[2] - k).abs() < 1e-9);
        }
    }

    #[test]
    fn linear_index_round_trip(i in 0usize..7, j in 0usize..6, k in 0usize..5) {
        let g = rotated_grid();
        prop_assert_eq!(g.voxel_index(g.linear_index([i, j, k])), [i, j, k]);
    }
}

#[test]
fn grid_errors_name_the_parameter() {
    let e = Grid::new([4, 4, 4], [1.0, 0.0, 1.0], [0.0; 3]).unwrap_err();
    assert!(e.to_string().contains("spacing"), "{e}");
    let e = Grid::new([4, 0, 4], [1.0; 3], [0.0; 3]).unwrap_err();
    assert!(e.to_string().contains("dimensions"), "{e}");
    let a = grid([4, 4, 4], [1.0; 3]);
    let b = grid([4, 4, 5], [1.0; 3]);
    assert!(matches!(
        a.ensure_same(&b, "test"),
        Err(Error::GridMismatch { .. })
    ));
}

#[test]
fn grid_serde_round_trip_and_validation() {
    let g = rotated_grid();
    let json = serde_json::to_string(&g).unwrap();
    let back: Grid = serde_json::from_str(&json).unwrap();
    assert!(g.approx_eq(&back, 1e-12));
    let bad = json.replace("1.5", "-1.5");
    assert!(
        serde_json::from_str::<Grid>(&bad).is_err(),
        "negative spacing must not deserialise"
    );
}

// ---------------------------------------------------------------- Volume

proptest! {
    #[test]
    fn resampling_onto_same_grid_is_identity(values in proptest::collection::vec(-1000.0f32..3000.0, 7 * 6 * 5)) {
        let g = rotated_grid();
        let v = Volume::from_vec(g.clone(), values).unwrap();
        let lin = v.resample(&g, Interpolation::Linear, f32::NAN);
        let near = v.resample_nearest(&g, f32::NAN);
        for ((a, b), c) in v.as_slice().iter().zip(lin.as_slice()).zip(near.as_slice()) {
            prop_assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0));
            prop_assert!((a - c).abs() <= 1e-3 * a.abs().max(1.0));
        }
    }

    #[test]
    fn trilinear_reproduces_linear_functions(x in -8.0f64..-1.0, y in 6.0f64..12.0, z in 3.0f64..10.0) {
        // f = 2x - 3y + 0.5z + 7 is reproduced exactly inside the hull of centres.
        let g = grid([10, 10, 10], [1.0, 1.0, 1.0]);
        let f = |p: [f64; 3]| 2.0 * p[0] - 3.0 * p[1] + 0.5 * p[2] + 7.0;
        let v = Volume::from_fn(g.clone(), |idx| f(g.voxel_center(idx)));
        let s = v.sample_linear([x, y, z]).unwrap();
        prop_assert!((s - f([x, y, z])).abs() < 1e-9);
    }
}

#[test]
fn volume_accessor_transposes_once() {
    let g = grid([3, 4, 5], [1.0; 3]);
    let v = Volume::from_fn(g, |[i, j, k]| (100 * k + 10 * j + i) as i32);
    assert_eq!(v.get([2, 3, 4]), Some(&432));
    assert_eq!(v[[1, 2, 3]], 321);
    assert_eq!(v.data()[[3, 2, 1]], 321);
    assert_eq!(v.get([3, 0, 0]), None);
}

#[test]
fn volume_shape_and_finite_errors() {
    let g = grid([3, 4, 5], [1.0; 3]);
    assert!(matches!(
        Volume::from_vec(g.clone(), vec![0.0f32; 59]),
        Err(Error::ShapeMismatch { .. })
    ));
    let arr = ndarray::Array3::<f32>::zeros((5, 4, 4));
    assert!(matches!(
        Volume::new(g.clone(), arr),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut v = Volume::filled(g.clone(), 1.0f32);
    v[[2, 1, 3]] = f32::NAN;
    let e = v.ensure_finite("CT").unwrap_err();
    assert!(e.to_string().contains("[2, 1, 3]"), "{e}");
    assert_eq!(v.stats().non_finite, 1);
    let other = Volume::filled(grid([3, 4, 6], [1.0; 3]), 0.0f32);
    assert!(matches!(
        v.zip_map(&other, |a, b| a + b),
        Err(Error::GridMismatch { .. })
    ));
}

#[test]
fn resample_through_translation_shifts_the_image() {
    // A ramp along x; the target frame is the source frame shifted by +4 mm in x,
    // so target point p samples the source at p + 4 mm.
    let g = grid([20, 3, 3], [2.0, 2.0, 2.0]);
    let v = Volume::from_fn(g.clone(), |idx| g.voxel_center(idx)[0] as f32);
    let t = AffineTransform::translation([4.0, 0.0, 0.0]).unwrap();
    let r = v.resample_through(&g, &t, Interpolation::Linear, -999.0);
    assert_relative_eq!(r[[5, 1, 1]], v[[7, 1, 1]], epsilon = 1e-5);
    // Near the +x edge the shifted point leaves the source: outside value.
    assert_relative_eq!(r[[19, 1, 1]], -999.0);
}

#[test]
fn resample_to_coarser_grid_keeps_mean_of_linear_data() {
    let g = grid([40, 40, 20], [1.0, 1.0, 2.0]);
    let v = Volume::from_fn(g.clone(), |idx| g.voxel_center(idx)[1] as f32);
    let coarse = g.resampled_to_spacing([4.0, 4.0, 4.0]).unwrap();
    let r = v.resample(&coarse, Interpolation::Linear, f32::NAN);
    assert_eq!(r.stats().non_finite, 0);
    assert_relative_eq!(r.stats().mean, v.stats().mean, epsilon = 1e-4);
}

// ---------------------------------------------------------------- Structure

fn random_mask(g: &Grid, bits: &[bool]) -> Volume<bool> {
    Volume::from_vec(g.clone(), bits.to_vec()).unwrap()
}

proptest! {
    #[test]
    fn union_and_intersection_volumes_add_up(
        a in proptest::collection::vec(any::<bool>(), 6 * 5 * 4),
        b in proptest::collection::vec(any::<bool>(), 6 * 5 * 4),
    ) {
        let g = grid([6, 5, 4], [1.0, 2.0, 3.0]);
        let sa = Structure::new("A", StructureRole::Target, random_mask(&g, &a)).unwrap();
        let sb = Structure::new("B", StructureRole::OrganAtRisk, random_mask(&g, &b)).unwrap();
        let u = sa.union(&sb).unwrap();
        let i = sa.intersection(&sb).unwrap();
        let d = sa.difference(&sb).unwrap();
        prop_assert!((u.volume_cm3() + i.volume_cm3() - sa.volume_cm3() - sb.volume_cm3()).abs() < 1e-9);
        prop_assert_eq!(d.voxel_count() + i.voxel_count(), sa.voxel_count());
    }

    #[test]
    fn dilation_then_erosion_never_loses_the_original(
        bits in proptest::collection::vec(prop::bool::weighted(0.15), 9 * 8 * 7),
        mx in 0.0f64..6.0, my in 0.0f64..6.0, mz in 0.0f64..6.0,
    ) {
        let g = grid([9, 8, 7], [1.0, 1.5, 2.5]);
        let s = Structure::new("S", StructureRole::Target, random_mask(&g, &bits)).unwrap();
        let closed = s.dilate([mx, my, mz]).unwrap().erode([mx, my, mz]).unwrap();
        for (orig, c) in s.mask().as_slice().iter().zip(closed.mask().as_slice()) {
            prop_assert!(!orig || *c);
        }
        // Erosion never adds, dilation never removes.
        let eroded = s.erode([mx, my, mz]).unwrap();
        prop_assert!(eroded.voxel_count() <= s.voxel_count());
        prop_assert!(s.dilate([mx, my, mz]).unwrap().voxel_count() >= s.voxel_count());
    }
}

#[test]
fn margins_follow_anisotropic_spacing() {
    // A single voxel dilated by 5 mm on a 1 x 2 x 2.5 mm grid reaches 5, 2 and 2 voxels.
    let g = grid([21, 21, 21], [1.0, 2.0, 2.5]);
    let s = Structure::new(
        "P",
        StructureRole::Target,
        Volume::from_fn(g, |v| v == [10, 10, 10]),
    )
    .unwrap();
    let d = s.dilate([5.0; 3]).unwrap();
    assert!(d.mask()[[15, 10, 10]] && !d.mask()[[16, 10, 10]]);
    assert!(d.mask()[[10, 12, 10]] && !d.mask()[[10, 13, 10]]);
    assert!(d.mask()[[10, 10, 12]] && !d.mask()[[10, 10, 13]]);
    assert!(s.dilate([-1.0, 0.0, 0.0]).is_err());
    assert!(s.erode([f64::NAN, 0.0, 0.0]).is_err());
}

#[test]
fn centroid_of_a_box_is_its_centre() {
    // A 3 x 4 x 2 block of voxels on a 1 x 2 x 2.5 mm grid: the centroid is
    // the mean of the voxel centres, (i, j, k) = (3, 3.5, 2.5) in index units.
    let g = grid([10, 10, 6], [1.0, 2.0, 2.5]);
    let block = Volume::from_fn(g.clone(), |[i, j, k]| {
        (2..5).contains(&i) && (2..6).contains(&j) && (2..4).contains(&k)
    });
    let s = Structure::new("B", StructureRole::Target, block).unwrap();
    let c = s.centroid_mm().unwrap();
    let expected = g.index_to_patient([3.0, 3.5, 2.5]);
    for a in 0..3 {
        assert_relative_eq!(c[a], expected[a], epsilon = 1e-12);
    }
    let empty = Structure::new("E", StructureRole::Other, Volume::filled(g, false)).unwrap();
    assert_eq!(empty.centroid_mm(), None);
}

#[test]
fn structure_errors() {
    let g = grid([4, 4, 4], [1.0; 3]);
    assert!(Structure::new("  ", StructureRole::Other, Volume::filled(g.clone(), false)).is_err());
    let empty = Structure::new(
        "Cord",
        StructureRole::OrganAtRisk,
        Volume::filled(g.clone(), false),
    )
    .unwrap();
    let e = empty.ensure_not_empty("a max-dose goal").unwrap_err();
    assert!(e.to_string().contains("Cord"), "{e}");
    let other = Structure::new(
        "X",
        StructureRole::Other,
        Volume::filled(grid([4, 4, 5], [1.0; 3]), true),
    )
    .unwrap();
    let e = empty.union(&other).unwrap_err();
    assert!(
        e.to_string().contains("Cord") && e.to_string().contains('X'),
        "{e}"
    );
}

#[test]
fn structure_resample_preserves_volume_roughly() {
    let g = grid([60, 60, 30], [1.0, 1.0, 2.0]);
    let sphere = Volume::from_fn(g.clone(), |v| {
        let p = g.voxel_center(v);
        let c = g.index_to_patient([30.0, 30.0, 15.0]);
        (0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f64>() <= 15f64.powi(2)
    });
    let s = Structure::new("Sphere", StructureRole::Target, sphere).unwrap();
    let coarse = g.resampled_to_spacing([3.0, 3.0, 3.0]).unwrap();
    let r = s.resample(&coarse);
    // 4/3 pi 15^3 = 14.14 cm^3.
    assert_relative_eq!(s.volume_cm3(), 14.14, max_relative = 0.03);
    assert_relative_eq!(r.volume_cm3(), 14.14, max_relative = 0.08);
}

// ---------------------------------------------------------------- Prescription

#[test]
fn prescription_validation() {
    let g = grid([2, 2, 1], [1.0; 3]);
    let ok = Volume::from_vec(g.clone(), vec![70.0f32, 84.0, 0.0, 70.0]).unwrap();
    assert!(Prescription::new(ok.clone(), 0, Provenance::default()).is_err());
    let nan = Volume::from_vec(g.clone(), vec![70.0f32, f32::NAN, 0.0, 70.0]).unwrap();
    let e = Prescription::new(nan, 35, Provenance::default()).unwrap_err();
    assert!(e.to_string().contains("[1, 0, 0]"), "{e}");
    let neg = Volume::from_vec(g.clone(), vec![70.0f32, -1.0, 0.0, 70.0]).unwrap();
    assert!(Prescription::new(neg, 35, Provenance::default()).is_err());
    assert!(Prescription::new(Volume::filled(g.clone(), 0.0), 35, Provenance::default()).is_err());
    let rx = Prescription::new(ok, 35, Provenance::default()).unwrap();
    assert_eq!(rx.prescribed_voxels(), vec![0, 1, 3]);
    let bounded = rx.clone().with_relative_bounds(0.95, 1.07).unwrap();
    assert_relative_eq!(bounded.min_gy().unwrap()[[1, 0, 0]], 79.8, epsilon = 1e-4);
    assert!(rx.clone().with_relative_bounds(1.1, 1.2).is_err());
    let json = serde_json::to_string(&bounded).unwrap();
    let back: Prescription = serde_json::from_str(&json).unwrap();
    assert_eq!(back, bounded);
}

// ---------------------------------------------------------------- Beam, layout, sequence

#[test]
fn beam_geometry_follows_iec_61217_for_hfs() {
    let iso = [10.0, 20.0, 30.0];
    let g0 = Beam::new("G0", 0.0, 0.0, 0.0, iso)
        .unwrap()
        .geometry(PatientPosition::HFS)
        .unwrap();
    // Gantry 0: source anterior (-y in LPS), beam travels posterior (+y).
    assert_relative_eq!(g0.source_mm[1], 20.0 - 1000.0, epsilon = 1e-9);
    assert_relative_eq!(g0.axis[1], 1.0, epsilon = 1e-12);
    // BEV x at gantry 0, collimator 0 is IEC X = patient left (+x); BEV y is superior (+z).
    assert_relative_eq!(g0.bev_x[0], 1.0, epsilon = 1e-12);
    assert_relative_eq!(g0.bev_y[2], 1.0, epsilon = 1e-12);
    let g90 = Beam::new("G90", 90.0, 0.0, 0.0, iso)
        .unwrap()
        .geometry(PatientPosition::HFS)
        .unwrap();
    assert_relative_eq!(g90.source_mm[0], 10.0 + 1000.0, epsilon = 1e-9);
    // Projection of the isocentre is the BEV origin at distance SAD.
    let (xy, depth) = g90.project(iso).unwrap();
    assert!(xy[0].abs() < 1e-9 && xy[1].abs() < 1e-9);
    assert_relative_eq!(depth, 1000.0, epsilon = 1e-9);
    // Collimator 90 (right-handed about the axis towards the source, i.e.
    // counter-clockwise seen from the source): leaf travel turns from patient
    // left to superior, across-pairs from superior to patient right.
    let c90 = Beam::new("C90", 0.0, 0.0, 90.0, iso)
        .unwrap()
        .geometry(PatientPosition::HFS)
        .unwrap();
    assert_relative_eq!(c90.bev_x[2], 1.0, epsilon = 1e-12);
    assert_relative_eq!(c90.bev_y[0], -1.0, epsilon = 1e-12);
    // Couch 90 (counter-clockwise seen from above) turns the feet towards
    // IEC +X, where the gantry-90 source is: that beam enters from inferior.
    let s90 = Beam::new("S90", 90.0, 90.0, 0.0, iso)
        .unwrap()
        .geometry(PatientPosition::HFS)
        .unwrap();
    assert_relative_eq!(s90.source_mm[2], 30.0 - 1000.0, epsilon = 1e-9);
    // Decubitus positions are refused, not treated as HFS.
    assert!(matches!(
        Beam::new("G0", 0.0, 0.0, 0.0, iso)
            .unwrap()
            .geometry(PatientPosition::HFDL),
        Err(Error::Unsupported(_))
    ));
    assert!(Beam::new("bad", f64::NAN, 0.0, 0.0, iso).is_err());
    assert!(
        Beam::new("b", 0.0, 0.0, 0.0, iso)
            .unwrap()
            .with_sad_mm(0.0)
            .is_err()
    );
}

#[test]
fn layout_validation_and_fluence_maps() {
    let bg = BeamGrid {
        n_rows: 2,
        n_cols: 2,
        x0_mm: 0.0,
        y0_mm: 0.0,
    };
    let bl = |beam, row, col| Beamlet { beam, row, col };
    assert!(BeamletLayout::new(vec![bg], vec![bl(0, 2, 0)], 5.0, 5.0).is_err());
    assert!(BeamletLayout::new(vec![bg], vec![bl(1, 0, 0)], 5.0, 5.0).is_err());
    assert!(BeamletLayout::new(vec![bg], vec![bl(0, 0, 0), bl(0, 0, 0)], 5.0, 5.0).is_err());
    assert!(BeamletLayout::new(vec![bg], vec![], 0.0, 5.0).is_err());
    let layout = BeamletLayout::new(
        vec![bg, bg],
        vec![bl(1, 1, 1), bl(0, 0, 1), bl(1, 0, 0)],
        5.0,
        5.0,
    )
    .unwrap();
    assert_eq!(layout.beam_range(0), 0..1);
    assert_eq!(layout.beam_range(1), 1..3);
    assert_eq!(
        layout.fluence_map(&[1.0, 2.0, 3.0], 1).unwrap(),
        vec![2.0, 0.0, 0.0, 3.0]
    );
    assert!(layout.fluence_map(&[1.0], 1).is_err());
    let json = serde_json::to_string(&layout).unwrap();
    assert_eq!(
        serde_json::from_str::<BeamletLayout>(&json).unwrap(),
        layout
    );
    let full = BeamletLayout::full(vec![bg], 5.0, 5.0).unwrap();
    assert_eq!(full.neighbour_pairs(), vec![(0, 1), (0, 2), (1, 3), (2, 3)]);
}

#[test]
fn step_and_shoot_control_points() {
    let a = |l: f64, r: f64, w: f64| Aperture {
        left_mm: vec![l, 0.0],
        right_mm: vec![r, 0.0],
        weight: w,
    };
    let s = Sequence::step_and_shoot(0, 5.0, -2.5, 2, vec![a(-5.0, 5.0, 1.0), a(0.0, 5.0, 3.0)])
        .unwrap();
    let cps = s.control_points();
    let cum: Vec<f64> = cps.iter().map(|c| c.cumulative_meterset_weight).collect();
    assert_eq!(cps.len(), 4);
    for (c, e) in cum.iter().zip([0.0, 0.25, 0.25, 1.0]) {
        assert_relative_eq!(*c, e);
    }
    assert!(Sequence::step_and_shoot(0, 5.0, 0.0, 2, vec![a(5.0, -5.0, 1.0)]).is_err());
    assert!(Sequence::step_and_shoot(0, 5.0, 0.0, 3, vec![a(-5.0, 5.0, 1.0)]).is_err());
    assert!(Sequence::step_and_shoot(0, 5.0, 0.0, 2, vec![a(-5.0, 5.0, -1.0)]).is_err());
}

// ---------------------------------------------------------------- DoseInfluence

fn small_layout(n: usize) -> BeamletLayout {
    BeamletLayout::full(
        vec![BeamGrid {
            n_rows: 1,
            n_cols: n,
            x0_mm: 0.0,
            y0_mm: 0.0,
        }],
        5.0,
        5.0,
    )
    .unwrap()
}

/// A random sparse matrix as a dense reference: `n_rows x n_cols`, roughly
/// `density` filled, with values from the seed.
fn dense_reference(n_rows: usize, n_cols: usize, seed: u64, density: f64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n_rows)
        .map(|_| {
            (0..n_cols)
                .map(|_| {
                    if next() < density {
                        (next() * 2.0) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

fn build_by_columns(dense: &[Vec<f32>], n_voxels: usize, reverse: bool) -> DoseInfluence {
    let n_rows = dense.len();
    let n_cols = dense[0].len();
    // Rows map to every other voxel, ascending.
    let voxels: Vec<u32> = (0..n_rows as u32).map(|r| 2 * r).collect();
    let g = Grid::new([n_voxels, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    let b = InfluenceBuilder::new(g, voxels, small_layout(n_cols)).unwrap();
    let order: Vec<usize> = if reverse {
        (0..n_cols).rev().collect()
    } else {
        (0..n_cols).collect()
    };
    for j in order {
        let rows: Vec<u32> = (0..n_rows as u32)
            .filter(|&r| dense[r as usize][j] != 0.0)
            .rev()
            .collect();
        let vals: Vec<f32> = rows.iter().map(|&r| dense[r as usize][j]).collect();
        b.add_column(j, &rows, &vals).unwrap();
    }
    b.finish().unwrap()
}

proptest! {
    #[test]
    fn frozen_matrix_matches_dense_reference(seed in any::<u64>(), n_rows in 1usize..9000, n_cols in 1usize..12) {
        let dense = dense_reference(n_rows, n_cols, seed, 0.3);
        let d = build_by_columns(&dense, 2 * n_rows, seed % 2 == 0);
        let w: Vec<f64> = (0..n_cols).map(|j| 0.5 + j as f64).collect();
        let g: Vec<f64> = (0..n_rows).map(|r| ((r * 7) % 11) as f64 - 5.0).collect();
        let dose = d.dose(&w).unwrap();
        let grad = d.transpose_product(&g).unwrap();
        for r in 0..n_rows {
            let expected: f64 = (0..n_cols).map(|j| f64::from(dense[r][j]) * w[j]).sum();
            prop_assert!((dose[r] - expected).abs() <= 1e-9 * expected.abs().max(1.0));
        }
        for j in 0..n_cols {
            let expected: f64 = (0..n_rows).map(|r| f64::from(dense[r][j]) * g[r]).sum();
            prop_assert!((grad[j] - expected).abs() <= 1e-9 * expected.abs().max(1.0));
        }
        let nnz = dense.iter().flatten().filter(|v| **v != 0.0).count();
        prop_assert_eq!(d.nnz(), nnz);
        // Column order of arrival does not change a single bit.
        let other = build_by_columns(&dense, 2 * n_rows, seed % 2 == 1);
        prop_assert_eq!(other.dose(&w).unwrap(), dose);
    }

    #[test]
    fn dose_is_linear_and_adjoint_identity_holds(
        seed in any::<u64>(),
        a in -3.0f64..3.0,
        b in -3.0f64..3.0,
    ) {
        let dense = dense_reference(500, 8, seed, 0.4);
        let d = build_by_columns(&dense, 1000, false);
        let w1: Vec<f64> = (0..8).map(|j| (j as f64 * 0.37 + a).sin()).collect();
        let w2: Vec<f64> = (0..8).map(|j| (j as f64 * 1.1 + b).cos()).collect();
        let combo: Vec<f64> = w1.iter().zip(&w2).map(|(x, y)| a * x + b * y).collect();
        let d1 = d.dose(&w1).unwrap();
        let d2 = d.dose(&w2).unwrap();
        let dc = d.dose(&combo).unwrap();
        for r in 0..500 {
            prop_assert!((dc[r] - (a * d1[r] + b * d2[r])).abs() < 1e-9);
        }
        // <D w, g> = <w, D^T g>
        let g: Vec<f64> = (0..500).map(|r| ((r as f64) * 0.01 + b).sin()).collect();
        let lhs: f64 = d1.iter().zip(&g).map(|(x, y)| x * y).sum();
        let dtg = d.transpose_product(&g).unwrap();
        let rhs: f64 = w1.iter().zip(&dtg).map(|(x, y)| x * y).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-10 * lhs.abs().max(1.0));
    }
}

#[test]
fn products_are_deterministic_across_repeats() {
    let dense = dense_reference(20_000, 10, 7, 0.5);
    let d = build_by_columns(&dense, 40_000, false);
    let g: Vec<f64> = (0..20_000).map(|r| (r as f64).sqrt()).collect();
    let first = d.transpose_product(&g).unwrap();
    for _ in 0..5 {
        assert_eq!(d.transpose_product(&g).unwrap(), first);
    }
}

#[test]
fn influence_error_paths() {
    let g = Grid::new([10, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    // Unsorted and out-of-grid row maps.
    assert!(InfluenceBuilder::new(g.clone(), vec![3, 2], small_layout(2)).is_err());
    assert!(InfluenceBuilder::new(g.clone(), vec![3, 10], small_layout(2)).is_err());
    let b = InfluenceBuilder::new(g.clone(), vec![1, 4, 7], small_layout(2)).unwrap();
    // Column whose rows and values differ in length; row out of range; beamlet out of range.
    assert!(matches!(
        b.add_column(0, &[0, 1], &[1.0]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        b.add_column(0, &[3], &[1.0]),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        b.add_column(2, &[0], &[1.0]),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        b.add_column(0, &[0], &[f32::NAN]),
        Err(Error::NonFinite { .. })
    ));
    b.add_column(1, &[0, 2], &[1.0, 2.0]).unwrap();
    assert!(
        b.add_column(1, &[1], &[1.0]).is_err(),
        "a beamlet added twice is an error"
    );
    let d = b.finish().unwrap();
    // Weights or gradients whose length does not match the layout / rows.
    assert!(matches!(d.dose(&[1.0]), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(
        d.transpose_product(&[1.0; 4]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(
        d.rows_in_mask(&Volume::filled(
            Grid::new([11, 1, 1], [1.0; 3], [0.0; 3]).unwrap(),
            true
        ))
        .is_err()
    );
    assert_eq!(
        d.rows_in_mask(&Volume::from_fn(g.clone(), |[i, _, _]| i >= 4))
            .unwrap(),
        vec![1, 2]
    );
    assert_eq!(d.row_of_voxel(7), Some(2));
    assert_eq!(d.row_of_voxel(8), None);
    let vol = d.dose_volume(&[0.0, 2.0]).unwrap();
    assert_relative_eq!(vol[[1, 0, 0]], 2.0);
    assert_relative_eq!(vol[[7, 0, 0]], 4.0);
    assert_relative_eq!(vol[[4, 0, 0]], 0.0);
    // CSR round trip and malformed CSR.
    let (p, c, v) = d.to_csr();
    let back =
        DoseInfluence::from_csr(g.clone(), vec![1, 4, 7], small_layout(2), &p, &c, &v).unwrap();
    assert_eq!(
        back.dose(&[1.0, 1.0]).unwrap(),
        d.dose(&[1.0, 1.0]).unwrap()
    );
    assert!(
        DoseInfluence::from_csr(
            g.clone(),
            vec![1, 4, 7],
            small_layout(2),
            &[0, 1, 0, 2],
            &c,
            &v
        )
        .is_err()
    );
    assert!(DoseInfluence::from_triplets(g, vec![1], small_layout(2), vec![(0, 5, 1.0)]).is_err());
}

#[test]
fn builder_compacts_without_losing_entries() {
    // Enough entries in one block to trigger several compactions.
    let n_rows = 4000;
    let n_cols = 40;
    let g = Grid::new([n_rows, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    let b = InfluenceBuilder::new(g, (0..n_rows as u32).collect(), small_layout(n_cols)).unwrap();
    for j in 0..n_cols {
        let rows: Vec<u32> = (0..n_rows as u32).collect();
        let vals: Vec<f32> = rows
            .iter()
            .map(|&r| 1.0 + (r as f32) * 1e-3 + j as f32)
            .collect();
        b.add_column(j, &rows, &vals).unwrap();
    }
    let d = b.finish().unwrap();
    assert_eq!(d.nnz(), n_rows * n_cols);
    let col = d.column(17);
    assert_eq!(col.len(), n_rows);
    assert_relative_eq!(col[123].1, 1.0 + 0.123 + 17.0, epsilon = 1e-5);
}

#[test]
fn add_column_rejects_an_out_of_range_beamlet_even_when_empty() {
    // An empty column used to index the "added" table out of range (a panic).
    let g = Grid::new([4, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    let b = InfluenceBuilder::new(g, vec![0, 1, 2], small_layout(2)).unwrap();
    let e = b.add_column(2, &[], &[]).unwrap_err();
    assert!(
        matches!(e, Error::IndexOutOfRange { ref context, .. } if context.contains("beamlet")),
        "{e}"
    );
    // A valid empty column is fine, once.
    b.add_column(1, &[], &[]).unwrap();
    assert!(b.add_column(1, &[], &[]).is_err());
}

#[test]
fn repeated_rows_in_a_column_are_summed_like_triplets() {
    let g = Grid::new([6, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    let voxels = vec![0, 2, 5];
    let b = InfluenceBuilder::new(g.clone(), voxels.clone(), small_layout(2)).unwrap();
    b.add_column(0, &[2, 0, 2, 2], &[1.0, 4.0, 0.5, 0.25])
        .unwrap();
    b.add_column(1, &[1, 1], &[3.0, -1.0]).unwrap();
    let d = b.finish().unwrap();
    // Each (row, column) is stored once, columns strictly ascending.
    assert_eq!(d.row(0), (&[0u32][..], &[4.0f32][..]));
    assert_eq!(d.row(1), (&[1u32][..], &[2.0f32][..]));
    assert_eq!(d.row(2), (&[0u32][..], &[1.75f32][..]));
    assert_eq!(d.nnz(), 3);
    let t = DoseInfluence::from_triplets(
        g,
        voxels,
        small_layout(2),
        vec![
            (2, 0, 1.0),
            (0, 0, 4.0),
            (2, 0, 0.5),
            (2, 0, 0.25),
            (1, 1, 3.0),
            (1, 1, -1.0),
        ],
    )
    .unwrap();
    assert_eq!(t, d);
}

proptest! {
    #[test]
    fn from_csr_equals_from_triplets(
        seed in any::<u64>(),
        n_rows in 1usize..9000,
        n_cols in 1usize..10,
        shuffle in any::<bool>(),
    ) {
        // Rows with columns in any order, repeated columns (their sum is a
        // dyadic fraction, so exact in any order) and explicit zeros.
        let dense = dense_reference(n_rows, n_cols, seed, 0.3);
        let mut row_ptr = vec![0u64];
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        let mut triplets = Vec::new();
        for (r, row) in dense.iter().enumerate() {
            let mut entries: Vec<(u32, f32)> = Vec::new();
            for (c, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    let half = (v * 64.0).round() / 128.0;
                    entries.push((c as u32, half));
                    entries.push((c as u32, half));
                } else if (r + c) % 5 == 0 {
                    entries.push((c as u32, 0.0));
                }
            }
            if shuffle {
                entries.reverse();
            } else {
                entries.sort_by_key(|e| e.0);
                entries.dedup_by(|a, b| {
                    let same = a.0 == b.0;
                    if same {
                        b.1 += a.1;
                    }
                    same
                });
            }
            for &(c, v) in &entries {
                cols.push(c);
                vals.push(v);
                triplets.push((r as u32, c, v));
            }
            row_ptr.push(cols.len() as u64);
        }
        let g = Grid::new([2 * n_rows, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
        let voxels: Vec<u32> = (0..n_rows as u32).map(|r| 2 * r).collect();
        let a = DoseInfluence::from_csr(g.clone(), voxels.clone(), small_layout(n_cols), &row_ptr, &cols, &vals).unwrap();
        let b = DoseInfluence::from_triplets(g, voxels, small_layout(n_cols), triplets).unwrap();
        prop_assert_eq!(&a, &b);
        // And the round trip through to_csr is exact.
        let (p2, c2, v2) = a.to_csr();
        let back = DoseInfluence::from_csr(a.grid().clone(), a.voxels().to_vec(), a.layout().clone(), &p2, &c2, &v2).unwrap();
        prop_assert_eq!(back, a);
    }
}

#[test]
fn from_csr_errors_name_the_first_bad_entry() {
    let g = Grid::new([10, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    let csr = |p: &[u64], c: &[u32], v: &[f32]| {
        DoseInfluence::from_csr(g.clone(), vec![1, 4, 7], small_layout(2), p, c, v)
    };
    // Lengths that disagree.
    assert!(matches!(
        csr(&[0, 1, 2], &[0, 1], &[1.0, 1.0]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        csr(&[0, 1, 2, 2], &[0, 1], &[1.0]),
        Err(Error::ShapeMismatch { .. })
    ));
    // Pointers that do not end at the number of entries.
    assert!(matches!(
        csr(&[0, 1, 1, 1], &[0, 1], &[1.0, 1.0]),
        Err(Error::InvalidParameter { .. })
    ));
    // A column out of range and a NaN: the error names the row.
    let e = csr(&[0, 1, 1, 2], &[0, 2], &[1.0, 1.0]).unwrap_err();
    assert!(
        matches!(e, Error::IndexOutOfRange { ref index, .. } if index == "2"),
        "{e}"
    );
    let e = csr(&[0, 1, 2, 2], &[0, 1], &[1.0, f32::NAN]).unwrap_err();
    assert!(e.to_string().contains("row 1, beamlet 1"), "{e}");
    // The row -> voxel map is checked too.
    assert!(
        DoseInfluence::from_csr(g, vec![4, 1, 7], small_layout(2), &[0, 0, 0, 0], &[], &[])
            .is_err()
    );
}

// ---------------------------------------------------------------- more closed forms and error paths

#[test]
fn affine_transform_validation_and_algebra() {
    let mut rows = [
        [1.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0, 2.0],
        [0.0, 0.0, 1.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let t = AffineTransform::from_rows(rows).unwrap();
    assert!(t.is_rigid(1e-12));
    assert_eq!(t.to_rows(), rows);
    rows[1][1] = f64::NAN;
    assert!(AffineTransform::from_rows(rows).is_err());
    rows[1][1] = 0.0; // singular linear part
    let e = AffineTransform::from_rows(rows).unwrap_err();
    assert!(e.to_string().contains("singular"), "{e}");
    rows[1][1] = 1.0;
    rows[3][0] = 0.5; // not an affine last row
    assert!(AffineTransform::from_rows(rows).is_err());
    assert!(AffineTransform::rigid([0.0, f64::INFINITY, 0.0], [0.0; 3]).is_err());
    // A scaling is affine but not rigid.
    let s = AffineTransform::from_rows([
        [2.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ])
    .unwrap();
    assert!(!s.is_rigid(1e-6));
}

proptest! {
    #[test]
    fn rigid_transform_composes_with_its_inverse(
        ax in -3.2f64..3.2, ay in -3.2f64..3.2, az in -3.2f64..3.2,
        tx in -100.0f64..100.0, ty in -100.0f64..100.0, tz in -100.0f64..100.0,
        px in -200.0f64..200.0, py in -200.0f64..200.0, pz in -200.0f64..200.0,
    ) {
        let t = AffineTransform::rigid([ax, ay, az], [tx, ty, tz]).unwrap();
        prop_assert!(t.is_rigid(1e-9));
        let p = [px, py, pz];
        let q = t.apply(p);
        // A rigid map keeps distances: |t(p) - t(0)| = |p|.
        let o = t.apply([0.0; 3]);
        let d = ((q[0] - o[0]).powi(2) + (q[1] - o[1]).powi(2) + (q[2] - o[2]).powi(2)).sqrt();
        prop_assert!((d - (px * px + py * py + pz * pz).sqrt()).abs() < 1e-9);
        let back = t.inverse().unwrap().after(&t).apply(p);
        for a in 0..3 {
            prop_assert!((back[a] - p[a]).abs() < 1e-9);
        }
    }

    #[test]
    fn bev_points_project_back_onto_themselves(
        gantry in 0.0f64..360.0, couch in 0.0f64..360.0, coll in 0.0f64..360.0,
        x in -200.0f64..200.0, y in -200.0f64..200.0,
        pos in 0usize..4,
    ) {
        let position = [PatientPosition::HFS, PatientPosition::HFP, PatientPosition::FFS, PatientPosition::FFP][pos];
        let g = Beam::new("B", gantry, couch, coll, [5.0, -3.0, 12.0]).unwrap().geometry(position).unwrap();
        // The BEV frame (x, y, towards source) is orthonormal and right-handed.
        let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let up = g.axis.map(|v| -v);
        for (a, b, e) in [(g.bev_x, g.bev_x, 1.0), (g.bev_y, g.bev_y, 1.0), (g.axis, g.axis, 1.0),
                          (g.bev_x, g.bev_y, 0.0), (g.bev_x, g.axis, 0.0), (g.bev_y, g.axis, 0.0)] {
            prop_assert!((dot(a, b) - e).abs() < 1e-12);
        }
        let cross = [
            g.bev_x[1] * g.bev_y[2] - g.bev_x[2] * g.bev_y[1],
            g.bev_x[2] * g.bev_y[0] - g.bev_x[0] * g.bev_y[2],
            g.bev_x[0] * g.bev_y[1] - g.bev_x[1] * g.bev_y[0],
        ];
        prop_assert!((dot(cross, up) - 1.0).abs() < 1e-12);
        // A point of the isocentre plane projects onto itself at depth SAD.
        let (xy, depth) = g.project(g.bev_point([x, y])).unwrap();
        prop_assert!((xy[0] - x).abs() < 1e-9 && (xy[1] - y).abs() < 1e-9);
        prop_assert!((depth - g.sad_mm).abs() < 1e-9);
        // Points behind the source have no projection.
        let behind = [0, 1, 2].map(|c| g.source_mm[c] - g.axis[c]);
        prop_assert!(g.project(behind).is_none());
    }
}

#[test]
fn gantry_zero_source_is_anterior_supine_and_posterior_prone() {
    // IEC 61217 with the couch at 0: the gantry-0 source is above the table,
    // i.e. anterior (-y in LPS) for a supine and posterior (+y) for a prone
    // patient; for feet-first positions the patient's left/right swap in BEV.
    let iso = [0.0; 3];
    let geom = |p| {
        Beam::new("G0", 0.0, 0.0, 0.0, iso)
            .unwrap()
            .geometry(p)
            .unwrap()
    };
    let hfs = geom(PatientPosition::HFS);
    let hfp = geom(PatientPosition::HFP);
    let ffs = geom(PatientPosition::FFS);
    let ffp = geom(PatientPosition::FFP);
    assert_relative_eq!(hfs.source_mm[1], -1000.0, epsilon = 1e-9);
    assert_relative_eq!(ffs.source_mm[1], -1000.0, epsilon = 1e-9);
    assert_relative_eq!(hfp.source_mm[1], 1000.0, epsilon = 1e-9);
    assert_relative_eq!(ffp.source_mm[1], 1000.0, epsilon = 1e-9);
    // BEV y points towards the gantry: superior for head first, inferior for
    // feet first.
    assert_relative_eq!(hfs.bev_y[2], 1.0, epsilon = 1e-12);
    assert_relative_eq!(ffs.bev_y[2], -1.0, epsilon = 1e-12);
    assert_relative_eq!(ffs.bev_x[0], -1.0, epsilon = 1e-12);
    // Codes round-trip; an unknown code is refused with its text.
    for p in [
        PatientPosition::HFS,
        PatientPosition::HFP,
        PatientPosition::FFS,
        PatientPosition::FFP,
        PatientPosition::HFDR,
        PatientPosition::HFDL,
        PatientPosition::FFDR,
        PatientPosition::FFDL,
    ] {
        assert_eq!(PatientPosition::from_dicom(p.as_dicom()).unwrap(), p);
    }
    let e = PatientPosition::from_dicom("SITTING").unwrap_err();
    assert!(e.to_string().contains("SITTING"), "{e}");
}

#[test]
fn grid_helpers_and_their_errors() {
    let g = grid([4, 3, 2], [2.0, 2.0, 3.0]);
    // Origin [-10, 5, 2.5]: voxel (1, 2, 1) is centred at [-8, 9, 5.5].
    assert_eq!(g.nearest_voxel([-8.4, 9.9, 5.0]), Some([1, 2, 1]));
    assert_eq!(g.nearest_voxel([-11.5, 5.0, 2.5]), None);
    assert_eq!(g.nearest_voxel([-10.0, 5.0, 2.5 + 3.0 * 1.6]), None);
    assert!(g.resampled_to_spacing([1.0, 0.0, 1.0]).is_err());
    assert!(g.resampled_to_spacing([1.0, f64::NAN, 1.0]).is_err());
    // Halving the spacing doubles the dimensions and keeps the box.
    let fine = g.resampled_to_spacing([1.0, 1.0, 1.5]).unwrap();
    assert_eq!(fine.dims(), [8, 6, 4]);
    let (lo, hi) = g.bounding_box_mm();
    let (flo, fhi) = fine.bounding_box_mm();
    for a in 0..3 {
        assert_relative_eq!(lo[a], flo[a], epsilon = 1e-12);
        assert_relative_eq!(hi[a], fhi[a], epsilon = 1e-12);
    }
    let v = Volume::filled(g.clone(), 0u8);
    assert!(matches!(
        v.with_grid(grid([4, 3, 3], [1.0; 3])),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn nearest_resampling_of_labels_picks_the_closest_source_voxel() {
    // Source: labels 0..6 along x at 3 mm; target at 1 mm from the same first
    // boundary. Target centre x_t = -11 + t mm (t = 0..17) lies in source voxel
    // floor(t / 3): a closed form for nearest-neighbour sampling.
    let src = Grid::new([6, 1, 1], [3.0, 1.0, 1.0], [-10.0, 0.0, 0.0]).unwrap();
    let labels = Volume::from_fn(src.clone(), |[i, _, _]| i as u16);
    let target = src.resampled_to_spacing([1.0, 1.0, 1.0]).unwrap();
    assert_eq!(target.dims(), [18, 1, 1]);
    let r = labels.resample_nearest(&target, u16::MAX);
    for t in 0..18 {
        assert_eq!(r[[t, 0, 0]], (t / 3) as u16, "target voxel {t}");
    }
    // Outside the source box (x > 6.5 mm) the fill value is used.
    let shifted = Grid::new([3, 1, 1], [3.0, 1.0, 1.0], [5.0, 0.0, 0.0]).unwrap();
    let r = labels.resample_nearest(&shifted, u16::MAX);
    assert_eq!(r.as_slice(), &[5, u16::MAX, u16::MAX][..]);
}

#[test]
fn prescription_bound_errors_name_the_voxel() {
    let g = grid([2, 2, 1], [1.0; 3]);
    let target = Volume::from_vec(g.clone(), vec![70.0f32, 84.0, 0.0, 70.0]).unwrap();
    let rx = Prescription::new(target.clone(), 35, Provenance::default()).unwrap();
    let min = target.map(|&d| d * 0.95);
    let mut max = target.map(|&d| d * 1.05);
    max[[1, 0, 0]] = 80.0; // below the 84 Gy target
    let e = rx.clone().with_bounds(min.clone(), max).unwrap_err();
    assert!(e.to_string().contains("[1, 0, 0]"), "{e}");
    let other = Volume::filled(grid([2, 2, 2], [1.0; 3]), 100.0f32);
    assert!(matches!(
        rx.clone().with_bounds(min.clone(), other),
        Err(Error::GridMismatch { .. })
    ));
    let mut bad = min.clone();
    bad[[0, 1, 0]] = -1.0;
    assert!(
        rx.clone()
            .with_bounds(bad, target.map(|&d| d * 1.1))
            .is_err()
    );
    // Serialised with only one of the two bounds: refused.
    let json = serde_json::to_value(rx.with_relative_bounds(0.95, 1.05).unwrap()).unwrap();
    let mut one_sided = json.clone();
    one_sided["max_gy"] = serde_json::Value::Null;
    let e = serde_json::from_value::<Prescription>(one_sided).unwrap_err();
    assert!(e.to_string().contains("both"), "{e}");
}
