//! Integration tests of dosepaint-io: round trips through every writer and
//! reader, real files from pydicom's test data (MIT; see tests/data/README.md),
//! and malformed files (tests/data/bad/, each with a named error).
// Exact float comparisons below compare values that are exact by
// construction: integer pixel values, and numbers parsed from the same
// decimal strings that were written (tolerances are used everywhere else).
#![allow(clippy::float_cmp)]

use std::path::{Path, PathBuf};

use dicom_core::VR;
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dosepaint_core::{
    AffineTransform, Aperture, Beam, BeamGrid, BeamletLayout, ControlPoint, DeliveryKind,
    DoseInfluence, Grid, Interpolation, PatientPosition, Sequence, Structure, StructureRole,
    Volume,
};
use dosepaint_io::*;
use proptest::prelude::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn bad(name: &str) -> PathBuf {
    data(&format!("bad/{name}"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "dosepaint-io-test-{tag}-{}-{}",
            std::process::id(),
            dosepaint_io::dicom::new_uid().rsplit('.').next().unwrap()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A grid rotated 30 degrees about z and 10 about x, with unequal spacing.
fn oblique_grid(dims: [usize; 3]) -> Grid {
    let (a, b) = (30f64.to_radians(), 10f64.to_radians());
    let rz = [
        [a.cos(), a.sin(), 0.0],
        [-a.sin(), a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let rx = |v: [f64; 3]| {
        [
            v[0],
            v[1] * b.cos() - v[2] * b.sin(),
            v[1] * b.sin() + v[2] * b.cos(),
        ]
    };
    let dir = [rx(rz[0]), rx(rz[1]), rx(rz[2])];
    Grid::with_direction(dims, [1.25, 0.8, 2.5], [-12.5, 40.0, -7.0], dir).unwrap()
}

fn assert_grid_close(a: &Grid, b: &Grid, tol: f64) {
    assert!(a.approx_eq(b, tol), "grids differ:\n{a:?}\n{b:?}");
}

// ---------------------------------------------------------------- NIfTI

/// Writes `f(n)` at voxel `n` as `.nii` and `.nii.gz` on two grids and reads
/// it back; `wrap` is the [`NiftiData`] variant the values must come back as.
fn nifti_roundtrip<T: NiftiElement>(f: impl Fn(usize) -> T, wrap: impl Fn(Volume<T>) -> NiftiData) {
    let dir = TempDir::new("nifti");
    for grid in [
        oblique_grid([5, 4, 3]),
        // Left-handed axes (qfac = -1).
        Grid::with_direction(
            [3, 4, 2],
            [2.0, 1.0, 3.0],
            [1.0, 2.0, 3.0],
            [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap(),
    ] {
        let n = grid.n_voxels();
        let v = Volume::from_vec(grid.clone(), (0..n).map(&f).collect()).unwrap();
        for name in ["a.nii", "a.nii.gz"] {
            let p = dir.path().join(name);
            write_nifti(&p, &v, &NiftiWriteOptions::default()).unwrap();
            let back = read_nifti(&p, &NiftiReadOptions::default()).unwrap();
            assert_eq!(back.spatial_source, SpatialSource::Sform);
            assert_grid_close(back.grid(), &grid, 1e-4);
            // Same variant and values (the grid is compared to tolerance above).
            let want = Volume::from_vec(back.grid().clone(), v.as_slice().to_vec()).unwrap();
            assert_eq!(back.data, wrap(want));
            assert_eq!(back.scaling, None);
            // The qform carries the same placement (float32 precision).
            let mut bytes = std::fs::read(&p).unwrap();
            if Path::new(name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
            {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut out)
                    .unwrap();
                bytes = out;
            }
            bytes[254] = 0; // sform_code = 0
            let q = nifti_from_bytes(&bytes, "q").unwrap();
            assert_eq!(q.spatial_source, SpatialSource::Qform);
            assert_grid_close(q.grid(), &grid, 1e-4);
        }
    }
}

#[test]
fn nifti_round_trips_every_datatype() {
    nifti_roundtrip(|n| (n % 251) as u8, NiftiData::U8);
    nifti_roundtrip(|n| n as i16 - 30, NiftiData::I16);
    nifti_roundtrip(|n| 60000 - n as u16, NiftiData::U16);
    nifti_roundtrip(|n| -100_000 + 7 * n as i32, NiftiData::I32);
    nifti_roundtrip(|n| n as f32 * 0.37 - 2.0, NiftiData::F32);
    nifti_roundtrip(|n| (n as f64).sqrt(), NiftiData::F64);
}

#[test]
fn nifti_writer_output_is_read_by_the_nifti_crate() {
    let dir = TempDir::new("nifti-crate");
    let grid = Grid::new([4, 3, 2], [1.0, 2.0, 3.0], [10.0, 20.0, 30.0]).unwrap();
    let v = Volume::from_fn(grid, |[i, j, k]| (i + 4 * j + 12 * k) as i16);
    let p = dir.path().join("x.nii");
    write_nifti(
        &p,
        &v,
        &NiftiWriteOptions {
            scaling: Some((2.0, -1.0)),
            ..Default::default()
        },
    )
    .unwrap();
    let obj = ::nifti::ReaderOptions::new().read_file(&p).unwrap();
    use ::nifti::NiftiObject;
    let h = obj.header();
    assert_eq!(h.dim().unwrap(), &[4, 3, 2]);
    assert_eq!(h.data_type().unwrap(), ::nifti::NiftiType::Int16);
    assert_eq!((h.scl_slope, h.scl_inter), (2.0, -1.0));
    // LPS origin (10, 20, 30) is RAS (-10, -20, 30); x and y axes flip.
    assert_eq!(h.srow_x, [-1.0, 0.0, 0.0, -10.0]);
    assert_eq!(h.srow_y, [0.0, -2.0, 0.0, -20.0]);
    assert_eq!(h.srow_z, [0.0, 0.0, 3.0, 30.0]);
    let raw = obj.into_volume().into_raw_data();
    let values: Vec<i16> = raw
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(values, v.as_slice());
}

/// Reads NIfTI bytes in memory with the default options.
fn nifti_from_bytes(bytes: &[u8], name: &str) -> Result<NiftiImage> {
    dosepaint_io::nifti::read_nifti_bytes(bytes, name, &NiftiReadOptions::default())
}

/// `le` (a value's little-endian bytes) in the file's byte order.
fn ordered<const N: usize>(mut le: [u8; N], big: bool) -> [u8; N] {
    if big {
        le.reverse();
    }
    le
}

/// Stores a value, given by its little-endian bytes, at byte `at` of `h`.
fn put<const N: usize>(h: &mut [u8], at: usize, le: [u8; N], big: bool) {
    h[at..at + N].copy_from_slice(&ordered(le, big));
}

/// A minimal NIfTI-1 header for hand-made files.
fn n1_header(big: bool, dim: [i16; 8], datatype: i16, bitpix: i16) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    put(&mut h, 0, 348i32.to_le_bytes(), big);
    for (n, d) in dim.iter().enumerate() {
        put(&mut h, 40 + 2 * n, d.to_le_bytes(), big);
    }
    put(&mut h, 70, datatype.to_le_bytes(), big);
    put(&mut h, 72, bitpix.to_le_bytes(), big);
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

#[test]
fn nifti_ras_to_lps_sform_qform_pixdim_and_byte_order() {
    for big in [false, true] {
        let mut h = n1_header(big, [3, 2, 2, 2, 1, 1, 1, 1], 4, 16);
        for (n, p) in [1.0f32, 2.0, 3.0, 4.0].iter().enumerate() {
            put(&mut h, 76 + 4 * n, p.to_le_bytes(), big);
        }
        put(&mut h, 108, 352f32.to_le_bytes(), big);
        put(&mut h, 112, 2f32.to_le_bytes(), big); // scl_slope
        put(&mut h, 116, (-5f32).to_le_bytes(), big); // scl_inter
        // sform: identity axes scaled by 2, 3, 4, offset (10, 20, 30) RAS.
        put(&mut h, 254, 2i16.to_le_bytes(), big);
        for (row, vals) in [
            [2.0f32, 0.0, 0.0, 10.0],
            [0.0, 3.0, 0.0, 20.0],
            [0.0, 0.0, 4.0, 30.0],
        ]
        .iter()
        .enumerate()
        {
            for (c, v) in vals.iter().enumerate() {
                put(&mut h, 280 + 16 * row + 4 * c, v.to_le_bytes(), big);
            }
        }
        // qform: 90 degrees about z (b = c = 0, d = sin 45), offset (1, 2, 3).
        put(&mut h, 252, 1i16.to_le_bytes(), big);
        put(
            &mut h,
            264,
            std::f32::consts::FRAC_1_SQRT_2.to_le_bytes(),
            big,
        );
        for (n, v) in [1.0f32, 2.0, 3.0].iter().enumerate() {
            put(&mut h, 268 + 4 * n, v.to_le_bytes(), big);
        }
        let mut bytes = h.clone();
        for n in 0..8i16 {
            bytes.extend_from_slice(&ordered(n.to_le_bytes(), big));
        }
        let img = nifti_from_bytes(&bytes, "hand").unwrap();
        assert_eq!(img.big_endian, big);
        assert_eq!(img.spatial_source, SpatialSource::Sform);
        let g = img.grid();
        assert_eq!(g.origin_mm(), [-10.0, -20.0, 30.0]);
        assert_eq!(g.spacing_mm(), [2.0, 3.0, 4.0]);
        assert_eq!(
            g.direction(),
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
        );
        // Scaling: 2 * stored - 5.
        assert_eq!(
            img.to_f32().as_slice(),
            &[-5.0, -3.0, -1.0, 1.0, 3.0, 5.0, 7.0, 9.0]
        );

        // Without sform: the qform. R(90 deg about z) sends i to +y (RAS),
        // i.e. -y in LPS; j to -x RAS = +x LPS.
        bytes[254..256].copy_from_slice(&[0, 0]);
        let q = nifti_from_bytes(&bytes, "hand").unwrap();
        assert_eq!(q.spatial_source, SpatialSource::Qform);
        let d = q.grid().direction();
        let close = |a: [f64; 3], b: [f64; 3]| (0..3).all(|c| (a[c] - b[c]).abs() < 1e-6);
        assert!(
            close(d[0], [0.0, -1.0, 0.0])
                && close(d[1], [1.0, 0.0, 0.0])
                && close(d[2], [0.0, 0.0, 1.0]),
            "{d:?}"
        );
        assert!(close(q.grid().origin_mm(), [-1.0, -2.0, 3.0]));
        assert!(close(q.grid().spacing_mm(), [2.0, 3.0, 4.0]));

        // Neither: pixdim only, RAS axes, origin 0.
        bytes[252..254].copy_from_slice(&[0, 0]);
        let p = nifti_from_bytes(&bytes, "hand").unwrap();
        assert_eq!(p.spatial_source, SpatialSource::Pixdim);
        assert_eq!(p.grid().direction()[0], [-1.0, -0.0, 0.0]);
        assert_eq!(p.grid().origin_mm(), [-0.0, -0.0, 0.0]);
    }
}

#[test]
fn nifti2_is_read() {
    let mut h = vec![0u8; 544];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&16i16.to_le_bytes()); // float32
    h[14..16].copy_from_slice(&32i16.to_le_bytes());
    for (n, d) in [3i64, 3, 2, 1, 1, 1, 1, 1].iter().enumerate() {
        h[16 + 8 * n..24 + 8 * n].copy_from_slice(&d.to_le_bytes());
    }
    for (n, p) in [1.0f64, 0.5, 0.5, 2.0, 1.0, 1.0, 1.0, 1.0]
        .iter()
        .enumerate()
    {
        h[104 + 8 * n..112 + 8 * n].copy_from_slice(&p.to_le_bytes());
    }
    h[168..176].copy_from_slice(&544i64.to_le_bytes());
    h[344..348].copy_from_slice(&1i32.to_le_bytes()); // qform_code, identity quaternion
    h[376..384].copy_from_slice(&5.0f64.to_le_bytes()); // qoffset_x
    h[500..504].copy_from_slice(&2i32.to_le_bytes()); // mm
    for n in 0..6 {
        h.extend_from_slice(&(n as f32 * 1.5).to_le_bytes());
    }
    let img = nifti_from_bytes(&h, "n2").unwrap();
    assert_eq!(img.version, 2);
    assert_eq!(img.grid().dims(), [3, 2, 1]);
    assert_eq!(img.grid().origin_mm(), [-5.0, -0.0, 0.0]);
    assert_eq!(img.to_f32().as_slice(), &[0.0, 1.5, 3.0, 4.5, 6.0, 7.5]);
}

#[test]
fn nifti_nan_voxels_are_reported_not_hidden() {
    let grid = Grid::new([3, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
    let v = Volume::from_vec(grid, vec![1.0f32, f32::NAN, f32::INFINITY]).unwrap();
    let bytes = dosepaint_io::nifti::nifti_bytes(&v, &NiftiWriteOptions::default()).unwrap();
    let img = nifti_from_bytes(&bytes, "nan").unwrap();
    assert_eq!(img.non_finite_voxels, 2);
    assert!(img.to_f32().as_slice()[1].is_nan());
}

#[test]
fn nifti_4d_needs_a_chosen_volume() {
    let read_4d = |volume| {
        read_nifti(
            bad("nifti_4d.nii"),
            &NiftiReadOptions {
                volume,
                ..Default::default()
            },
        )
    };
    let err = read_4d(None).unwrap_err();
    assert!(
        matches!(err, Error::FourDimensional { volumes: 3, .. }),
        "{err}"
    );
    let img = read_4d(Some(2)).unwrap();
    assert_eq!(
        img.to_f32().as_slice(),
        &[16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0]
    );
    let err = read_4d(Some(3)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[test]
fn malformed_nifti_files_give_named_errors() {
    let opts = NiftiReadOptions::default();
    let e = read_nifti(bad("nifti_truncated.nii"), &opts).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    let e = read_nifti(bad("nifti_absurd_dims.nii"), &opts).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    let e = read_nifti(bad("nifti_bad_sizeof.nii"), &opts).unwrap_err();
    assert!(matches!(e, Error::NiftiHeader { .. }), "{e}");
    let e = read_nifti(bad("nifti_rgb.nii"), &opts).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedDatatype { .. }) && e.to_string().contains("RGB24"),
        "{e}"
    );
    let e = read_nifti(bad("nifti_negative_dim.nii"), &opts).unwrap_err();
    assert!(
        matches!(e, Error::NiftiHeader { .. }) && e.to_string().contains("dim[2]"),
        "{e}"
    );
}

// ---------------------------------------------------------------- DICOM images from pydicom

#[test]
fn pydicom_mr_small_in_every_transfer_syntax() {
    // Pixel sum and two pixels computed with pydicom 3.0 (ds.pixel_array):
    // sum 2125338, [row 10, col 20] = 316, [63, 63] = 862.
    for name in [
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
    ] {
        let img = read_series(
            &[data(name)],
            &SeriesSelector::Only,
            &SeriesReadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.modality, Modality::Mr);
        let ImageData::F32(v) = &img.data else {
            panic!("MR is real-valued")
        };
        assert_eq!(v.grid().dims(), [64, 64, 1]);
        assert_eq!(
            v.as_slice().iter().map(|&x| f64::from(x)).sum::<f64>(),
            2_125_338.0,
            "{name}"
        );
        assert_eq!(v[[20, 10, 0]], 316.0);
        assert_eq!(v[[63, 63, 0]], 862.0);
        assert_eq!(v.grid().origin_mm(), [-83.9063, -91.2, 6.6406]);
        assert_eq!(v.grid().spacing_mm(), [0.3125, 0.3125, 0.8]);
        assert_eq!(img.patient_position, Some(PatientPosition::HFS));
    }
}

#[test]
fn pydicom_deflated_and_ct_files() {
    // image_dfl.dcm: Deflated Explicit VR LE, 512 x 512 uint8, pydicom sum 33322688.
    let bytes = std::fs::read(data("image_dfl.dcm")).unwrap();
    let (rows, cols, frames, values) =
        dosepaint_io::dicom::decode_pixel_bytes(&bytes, "image_dfl").unwrap();
    assert_eq!((rows, cols, frames), (512, 512, 1));
    assert_eq!(values.iter().sum::<f64>(), 33_322_688.0);
    // CT_small.dcm: stored sum 14826310 (pydicom), slope 1, intercept -1024
    // over 128 x 128 pixels; patient position FFS is carried, not assumed HFS.
    let img = read_series(
        &[data("CT_small.dcm")],
        &SeriesSelector::Modality(Modality::Ct),
        &SeriesReadOptions::default(),
    )
    .unwrap();
    let ImageData::I16(v) = &img.data else {
        panic!("CT is i16")
    };
    let sum: i64 = v.as_slice().iter().map(|&x| i64::from(x)).sum();
    assert_eq!(sum, 14_826_310 - 1024 * 128 * 128);
    assert_eq!(v[[64, 64, 0]], 1928 - 1024);
    assert_eq!(img.units, Units::Hu);
    assert_eq!(img.patient_position, Some(PatientPosition::FFS));
}

#[test]
fn unsupported_compression_names_the_transfer_syntax() {
    let bytes = std::fs::read(bad("JPEG-lossy.dcm")).unwrap();
    let e = dosepaint_io::dicom::decode_pixel_bytes(&bytes, "jpeg").unwrap_err();
    match e {
        Error::UnsupportedTransferSyntax { uid, name, .. } => {
            assert_eq!(uid, "1.2.840.10008.1.2.4.51");
            assert!(name.contains("JPEG Extended"));
        }
        e => panic!("{e}"),
    }
}

/// RT Dose read options that accept relative dose.
fn relative_dose_ok() -> RtDoseReadOptions {
    RtDoseReadOptions {
        accept_relative: true,
        ..Default::default()
    }
}

#[test]
fn malformed_dicom_files_give_named_errors() {
    let o = SeriesReadOptions::default();
    let e = read_series(
        &[bad("ct_missing_pixel_spacing.dcm")],
        &SeriesSelector::Only,
        &o,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::MissingTag { tag, .. } if tag.contains("PixelSpacing")),
        "{e}"
    );
    let e = read_series(&[bad("not_dicom.dcm")], &SeriesSelector::Only, &o).unwrap_err();
    assert!(matches!(e, Error::NoSeries { .. }), "{e}");
    let e = dosepaint_io::dicom::parse_dataset_bytes(
        &std::fs::read(bad("not_dicom.dcm")).unwrap(),
        "x",
    )
    .unwrap_err();
    assert!(matches!(e, Error::DicomRead { .. }), "{e}");
    let e = read_series(&[bad("MR_truncated.dcm")], &SeriesSelector::Only, &o).unwrap_err();
    assert!(
        matches!(e, Error::DicomRead { .. } | Error::Truncated { .. }),
        "{e}"
    );
    let e = read_rtplan(bad("rtplan_truncated.dcm")).unwrap_err();
    assert!(matches!(e, Error::DicomRead { .. }), "{e}");
    let e = read_rtdose(bad("rtdose_absurd_size.dcm"), &relative_dose_ok()).unwrap_err();
    assert!(matches!(e, Error::InvalidTag { .. }), "{e}");
    let e = read_rtdose(data("CT_small.dcm"), &RtDoseReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::WrongModality { .. }), "{e}");
}

// ---------------------------------------------------------------- series writer and reader

fn ct_volume(grid: &Grid) -> Volume<i16> {
    Volume::from_fn(grid.clone(), |[i, j, k]| {
        (i as i16 * 7 - j as i16 * 3 + k as i16 * 100) - 1000
    })
}

/// Writes [`ct_volume`] on `grid` as a CT series with the default options.
fn write_test_ct(dir: impl AsRef<Path>, grid: &Grid) -> WrittenSeries {
    write_ct_series(dir, &ct_volume(grid), &SeriesWriteOptions::default()).unwrap()
}

/// Reads the only series under `dir` with the default options.
fn read_only_series(dir: &Path) -> Result<Image> {
    read_series_dir(dir, &SeriesSelector::Only, &SeriesReadOptions::default())
}

#[test]
fn ct_series_round_trips_in_every_syntax() {
    let grid = oblique_grid([6, 5, 4]);
    let hu = ct_volume(&grid);
    for syntax in [
        WriteSyntax::ExplicitLittle,
        WriteSyntax::ImplicitLittle,
        WriteSyntax::ExplicitBig,
        WriteSyntax::Deflated,
        WriteSyntax::BareImplicitLittle,
    ] {
        let dir = TempDir::new("ct");
        let opts = SeriesWriteOptions {
            syntax,
            patient_position: Some(PatientPosition::HFP),
            ..Default::default()
        };
        let written = write_ct_series(dir.path(), &hu, &opts).unwrap();
        // Shuffled file order: the reader sorts along the normal.
        let mut files = written.files.clone();
        files.reverse();
        files.swap(0, 2);
        let img = read_series(&files, &SeriesSelector::Only, &SeriesReadOptions::default())
            .unwrap_or_else(|e| panic!("{syntax:?}: {e}"));
        let ImageData::I16(back) = &img.data else {
            panic!()
        };
        assert_grid_close(back.grid(), &grid, 1e-6);
        assert_eq!(back.as_slice(), hu.as_slice(), "{syntax:?}");
        assert_eq!(img.slice_uids, written.slice_uids);
        assert_eq!(
            img.frame_of_reference_uid.as_deref(),
            Some(written.frame_of_reference_uid.as_str())
        );
        assert_eq!(img.patient_position, Some(PatientPosition::HFP));
    }
}

#[test]
fn series_selection_by_uid_and_modality() {
    let dir = TempDir::new("select");
    let grid = Grid::new([4, 4, 3], [1.0; 3], [0.0; 3]).unwrap();
    let ct = write_test_ct(dir.path().join("ct"), &grid);
    let mr = Image::new(
        ImageData::F32(Volume::from_fn(grid.clone(), |[i, j, k]| {
            (i * j + k) as f32 * 0.5
        })),
        Modality::Mr,
        Units::AsStored,
    );
    let mr_w = write_series(
        dir.path().join("mr"),
        &mr,
        &SeriesWriteOptions {
            file_prefix: "MR".into(),
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(dir.path().join("README.txt"), "not DICOM").unwrap();
    let o = SeriesReadOptions::default();
    let e = read_only_series(dir.path()).unwrap_err();
    assert!(matches!(e, Error::AmbiguousSeries { count: 2, .. }), "{e}");
    let m = read_series_dir(dir.path(), &SeriesSelector::Modality(Modality::Mr), &o).unwrap();
    assert_eq!(m.series_uid.as_deref(), Some(mr_w.series_uid.as_str()));
    let ImageData::F32(v) = &m.data else { panic!() };
    for (a, b) in v.as_slice().iter().zip(mr.data.to_f32().as_slice()) {
        assert!((a - b).abs() <= 4.5 / 32767.0, "{a} vs {b}"); // 16-bit quantisation of max 4.5
    }
    let c = read_series_dir(dir.path(), &SeriesSelector::Uid(ct.series_uid.clone()), &o).unwrap();
    assert_eq!(c.modality, Modality::Ct);
    let e = read_series_dir(dir.path(), &SeriesSelector::Uid("1.2.3".into()), &o).unwrap_err();
    assert!(matches!(e, Error::NoSeries { .. }), "{e}");
}

/// Rewrites a DICOM file after `edit`.
fn edit_dicom(path: &Path, edit: impl FnOnce(&mut dicom_object::InMemDicomObject)) {
    let mut obj = dicom_object::open_file(path).unwrap();
    edit(&mut obj);
    obj.write_to_file(path).unwrap();
}

fn ds_values(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(v.iter().map(|x| format!("{x}")).collect())
}

#[test]
fn inconsistent_stacks_are_refused() {
    let grid = Grid::new([4, 4, 6], [1.0, 1.0, 2.0], [0.0, 0.0, 0.0]).unwrap();
    let fresh = |tag: &str| {
        let dir = TempDir::new(tag);
        let w = write_test_ct(dir.path(), &grid);
        (dir, w)
    };
    let set = |path: &Path, tag, vals: &[f64]| {
        edit_dicom(path, |o| {
            o.put(dicom_core::DataElement::new(tag, VR::DS, ds_values(vals)));
        });
    };
    // Mixed orientation.
    let (d, w) = fresh("orient");
    set(
        &w.files[3],
        tags::IMAGE_ORIENTATION_PATIENT,
        &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0],
    );
    let e = read_only_series(d.path()).unwrap_err();
    assert!(matches!(e, Error::MixedOrientation { .. }), "{e}");
    // Gantry tilt: slices shifted sideways in proportion to their height.
    let (d, w) = fresh("tilt");
    for (k, f) in w.files.iter().enumerate() {
        set(
            f,
            tags::IMAGE_POSITION_PATIENT,
            &[0.0, 0.3 * k as f64, 2.0 * k as f64],
        );
    }
    let e = read_only_series(d.path()).unwrap_err();
    assert!(matches!(e, Error::GantryTilt { .. }), "{e}");
    // Duplicated slice.
    let (d, w) = fresh("dup");
    std::fs::copy(&w.files[2], d.path().join("copy.dcm")).unwrap();
    edit_dicom(&d.path().join("copy.dcm"), |o| {
        o.put_str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4");
    });
    let e = read_only_series(d.path()).unwrap_err();
    assert!(matches!(e, Error::DuplicateSlice { .. }), "{e}");
    // Missing slices.
    let (d, w) = fresh("gap");
    std::fs::remove_file(&w.files[2]).unwrap();
    std::fs::remove_file(&w.files[3]).unwrap();
    let e = read_only_series(d.path()).unwrap_err();
    assert!(matches!(e, Error::MissingSlices { missing: 2, .. }), "{e}");
    // Non-uniform spacing.
    let (d, w) = fresh("uneven");
    set(&w.files[4], tags::IMAGE_POSITION_PATIENT, &[0.0, 0.0, 8.7]);
    let e = read_only_series(d.path()).unwrap_err();
    assert!(matches!(e, Error::NonUniformSpacing { .. }), "{e}");
}

/// Whether `e` is an [`Error::InvalidTag`] for `tag` (its keyword) in a file
/// whose name contains `file`.
fn is_invalid_tag(e: &Error, tag: &str, file: &str) -> bool {
    matches!(e, Error::InvalidTag { tag: t, path, .. } if t.contains(tag) && path.contains(file))
}

#[test]
fn corrupt_orientation_and_slice_thickness_name_the_file_and_the_tag() {
    let iop = "ImageOrientationPatient";
    let grid = Grid::new([4, 4, 6], [1.0, 1.0, 2.0], [0.0, 0.0, 0.0]).unwrap();
    // The same corrupt orientation in every slice (so not a mixed stack): a
    // zero row cosine used to turn into NaN axes and a "non-uniform spacing"
    // of NaN mm; a cosine of length 2 or a column at 6 degrees from
    // perpendicular is no orthonormal frame either.
    for cosines in [
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        [2.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 0.1, 0.995, 0.0],
    ] {
        let dir = TempDir::new("iop");
        let w = write_test_ct(dir.path(), &grid);
        for f in &w.files {
            edit_dicom(f, |o| {
                o.put(dicom_core::DataElement::new(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    VR::DS,
                    ds_values(&cosines),
                ));
            });
        }
        let e = read_only_series(dir.path()).unwrap_err();
        assert!(is_invalid_tag(&e, iop, ".dcm"), "{cosines:?}: {e}");
    }
    // A single slice takes its third spacing from SliceThickness, which must
    // be positive (it used to reach the grid and fail there without a file).
    let one = Grid::new([4, 4, 1], [1.0; 3], [0.0; 3]).unwrap();
    for thickness in [0.0, -2.0] {
        let dir = TempDir::new("thick");
        let w = write_test_ct(dir.path(), &one);
        edit_dicom(&w.files[0], |o| {
            o.put(dicom_core::DataElement::new(
                tags::SLICE_THICKNESS,
                VR::DS,
                ds_values(&[thickness]),
            ));
        });
        let e = read_only_series(dir.path()).unwrap_err();
        let name = w.files[0].file_name().unwrap().to_str().unwrap();
        assert!(is_invalid_tag(&e, "SliceThickness", name), "{e}");
    }
    // RT Dose: the same check, naming the dose file (a column 0.6 degrees from
    // perpendicular used to pass the reader and fail in the grid, unnamed).
    let dose_grid = Grid::new([3, 2, 2], [2.0; 3], [0.0; 3]).unwrap();
    let dose = Volume::from_fn(dose_grid, |[i, j, k]| (i + j + k) as f32);
    for cosines in [
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 0.01, 1.0, 0.0],
    ] {
        let dir = TempDir::new("rtdose-iop");
        let p = dir.path().join("dose_iop.dcm");
        write_rtdose(&p, &dose, &RtDoseWriteOptions::default()).unwrap();
        edit_dicom(&p, |o| {
            o.put(dicom_core::DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds_values(&cosines),
            ));
        });
        let e = read_rtdose(&p, &RtDoseReadOptions::default()).unwrap_err();
        assert!(is_invalid_tag(&e, iop, "dose_iop.dcm"), "{cosines:?}: {e}");
    }
}

// ---------------------------------------------------------------- PET and ADC

/// Writes a PET series (Bq/mL) into `dir`, acquired 70 kg, 370 MBq F-18, one
/// half-life before the series time, with the given decay correction.
fn write_pet(dir: &Path, pet: &Image, decay: DecayCorrection) -> WrittenSeries {
    let acquisition = PetAcquisition {
        weight_kg: 70.0,
        injected_bq: 370e6,
        half_life_s: 6586.2, // F-18, 109.77 min (shared/reference/dose_painting.md)
        injection_datetime: "20240301090000".into(),
        series_date: "20240301".into(),
        series_time: "104946.2".into(), // 109.77 min = 1 h 49 min 46.2 s after injection
        decay_correction: decay,
    };
    let options = SeriesWriteOptions {
        pet: Some(acquisition),
        ..Default::default()
    };
    write_series(dir, pet, &options).unwrap()
}

/// Read options that convert PET to SUV_bw.
fn suv_options() -> SeriesReadOptions {
    SeriesReadOptions {
        pet_values: PetValues::SuvBw,
        ..Default::default()
    }
}

#[test]
fn pet_bq_per_ml_and_suv() {
    let grid = Grid::new([5, 4, 3], [4.0, 4.0, 3.0], [-10.0, -8.0, 0.0]).unwrap();
    let act = Volume::from_fn(grid.clone(), |[i, j, k]| {
        1000.0 + (i * 1000 + j * 300 + k * 50) as f32
    });
    let pet = Image::new(ImageData::F32(act.clone()), Modality::Pt, Units::BqPerMl);
    for (decay, a_ref) in [
        (DecayCorrection::Start, 185e6),
        (DecayCorrection::Admin, 370e6),
    ] {
        let dir = TempDir::new("pet");
        write_pet(dir.path(), &pet, decay);
        let bq = read_only_series(dir.path()).unwrap();
        assert_eq!(bq.units, Units::BqPerMl);
        let suv = read_series_dir(dir.path(), &SeriesSelector::Only, &suv_options()).unwrap();
        assert_eq!(suv.units, Units::SuvBw);
        // SUV = C * 70000 g / A, A = 370 MBq * 2^(-1) at START (one half-life), 370 MBq at ADMIN.
        let (b, s) = (bq.data.to_f32(), suv.data.to_f32());
        for ((x, y), want) in b.as_slice().iter().zip(s.as_slice()).zip(act.as_slice()) {
            assert!((x - want).abs() <= 5100.0 / 32767.0, "{x} vs {want}");
            let expected = f64::from(*x) * 70_000.0 / a_ref;
            assert!(
                (f64::from(*y) - expected).abs() <= 1e-6 * expected.abs().max(1e-3),
                "{y} vs {expected}"
            );
        }
    }
}

#[test]
fn pet_without_what_suv_needs_is_refused_with_the_reason() {
    let grid = Grid::new([3, 3, 2], [4.0; 3], [0.0; 3]).unwrap();
    let pet = Image::new(
        ImageData::F32(Volume::filled(grid, 2000.0)),
        Modality::Pt,
        Units::BqPerMl,
    );
    let suv = suv_options();
    let dir = TempDir::new("pet-bad");
    let w = write_pet(dir.path(), &pet, DecayCorrection::Start);
    for f in &w.files {
        edit_dicom(f, |o| {
            o.remove_element(tags::PATIENT_WEIGHT);
        });
    }
    let e = read_series_dir(dir.path(), &SeriesSelector::Only, &suv).unwrap_err();
    assert!(
        matches!(&e, Error::MissingTag { tag, .. } if tag.contains("PatientWeight")),
        "{e}"
    );
    for f in &w.files {
        edit_dicom(f, |o| {
            o.put_str(tags::UNITS, VR::CS, "CNTS");
        });
    }
    let e = read_series_dir(dir.path(), &SeriesSelector::Only, &suv).unwrap_err();
    assert!(
        matches!(&e, Error::SuvUnavailable { reason, .. } if reason.contains("CNTS")),
        "{e}"
    );
}

#[test]
fn adc_maps_come_back_in_mm2_per_s() {
    let grid = Grid::new([4, 4, 2], [2.0; 3], [0.0; 3]).unwrap();
    // Tissue ADC 0.5e-3 .. 2.0e-3 mm^2/s.
    let adc = Volume::from_fn(grid, |[i, j, k]| 0.5e-3 + 1e-4 * (i + 4 * j + 2 * k) as f32);
    let img = Image::new(ImageData::F32(adc.clone()), Modality::Mr, Units::Mm2PerS);
    let dir = TempDir::new("adc");
    write_series(dir.path(), &img, &SeriesWriteOptions::default()).unwrap();
    let back = read_only_series(dir.path()).unwrap();
    assert_eq!(back.units, Units::Mm2PerS);
    assert!(
        back.notes.iter().any(|n| n.contains("1e-6")),
        "{:?}",
        back.notes
    );
    for (a, b) in back.data.to_f32().as_slice().iter().zip(adc.as_slice()) {
        assert!((a - b).abs() < 2e-7, "{a} vs {b}");
    }
}

// ---------------------------------------------------------------- RTSTRUCT

#[test]
fn pydicom_rtstruct_is_read_and_rasterized() {
    // rtstruct.dcm has no preamble and no file meta group (bare implicit LE).
    let rs = read_rtstruct(data("rtstruct.dcm")).unwrap();
    assert_eq!(rs.rois.len(), 3);
    let body = rs.roi("patient").unwrap();
    assert_eq!(body.number, 1);
    assert_eq!(body.color, Some([220, 160, 120]));
    assert_eq!(body.interpreted_type.as_deref(), Some("EXTERNAL"));
    assert_eq!(body.role(), StructureRole::External);
    assert_eq!(body.contours.len(), 3);
    assert_eq!(
        rs.roi("Isocenter 1").unwrap().contours[0].kind,
        ContourKind::Point
    );
    // Three 400 x 300 mm rectangles at z = -200, -190, -180 (10 mm apart).
    // On a 10 x 10 x 5 mm grid each covers 40 x 30 voxels and each plane
    // fills a 10 mm slab: z = -205 .. -175, i.e. 7 slices.
    let grid = Grid::new([40, 30, 8], [10.0, 10.0, 5.0], [-195.0, -145.0, -205.0]).unwrap();
    let s = rs.to_structures(&grid).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].voxel_count(), 7 * 1200);
    assert!(!s[0].mask()[[0, 0, 7]]);
    let e = rs
        .roi("Isocenter 1")
        .unwrap()
        .rasterize(&grid, None)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }));
}

#[test]
fn rtstruct_round_trip_with_holes_and_islands() {
    let dir = TempDir::new("rtstruct");
    let grid = Grid::new([24, 20, 6], [1.5, 1.5, 2.0], [-18.0, -15.0, -6.0]).unwrap();
    let series = write_test_ct(dir.path().join("ct"), &grid);
    let ring = Structure::new(
        "RING",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |[i, j, k]| {
            let r2 = (i as f64 - 8.0).powi(2) + (j as f64 - 9.0).powi(2);
            (9.0..=36.0).contains(&r2) && (1..5).contains(&k)
        }),
    )
    .unwrap();
    let islands = Structure::new(
        "ISLANDS",
        StructureRole::OrganAtRisk,
        Volume::from_fn(grid.clone(), |[i, j, k]| {
            (k == 2 || k == 3)
                && ((19..22).contains(&i) && (2..5).contains(&j)
                    || (i == 20 && j == 14)
                    || (i == 21 && j == 15))
        }),
    )
    .unwrap();
    let path = dir.path().join("rs.dcm");
    let reference = ReferencedSeries::from(&series);
    write_rtstruct(
        &path,
        &reference,
        &[
            RoiToWrite {
                structure: &ring,
                color: [255, 0, 0],
                interpreted_type: None,
            },
            RoiToWrite {
                structure: &islands,
                color: [0, 255, 0],
                interpreted_type: Some("AVOIDANCE".into()),
            },
        ],
        &RtStructWriteOptions::default(),
    )
    .unwrap();
    let rs = read_rtstruct(&path).unwrap();
    assert_eq!(
        rs.referenced_series_uid.as_deref(),
        Some(series.series_uid.as_str())
    );
    assert_eq!(
        rs.frame_of_reference_uid.as_deref(),
        Some(series.frame_of_reference_uid.as_str())
    );
    let ring_back = rs.roi("RING").unwrap();
    assert_eq!(ring_back.interpreted_type.as_deref(), Some("PTV"));
    assert_eq!(ring_back.color, Some([255, 0, 0]));
    let got = rs.to_structures(&grid).unwrap();
    assert_eq!(got[0].mask(), ring.mask());
    assert_eq!(got[1].mask(), islands.mask());
    assert_eq!(got[1].role(), StructureRole::OrganAtRisk);
    // Grid that does not match the referenced images is refused.
    let other = Structure::new(
        "X",
        StructureRole::Other,
        Volume::filled(Grid::new([2, 2, 2], [1.0; 3], [0.0; 3]).unwrap(), true),
    )
    .unwrap();
    let e = write_rtstruct(
        dir.path().join("x.dcm"),
        &reference,
        &[RoiToWrite {
            structure: &other,
            color: [1, 2, 3],
            interpreted_type: None,
        }],
        &RtStructWriteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

// ---------------------------------------------------------------- RTDOSE

#[test]
fn pydicom_rtdose_in_four_syntaxes() {
    let e = read_rtdose(data("rtdose.dcm"), &RtDoseReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::RelativeDose { .. }), "{e}");
    let rel = relative_dose_ok();
    // pydicom: 15 frames of 10 x 10, uint32 sum 1519910000, [7, 5, 5] = 975000,
    // Dose Grid Scaling 1e-6, offsets 0, 5, ... 70 mm.
    for name in ["rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm"] {
        let d = read_rtdose(data(name), &rel).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(d.relative);
        assert_eq!(d.summation, DoseSummation::Beam);
        let g = d.dose.grid();
        assert_eq!(g.dims(), [10, 10, 15]);
        assert_eq!(g.spacing_mm(), [10.0, 10.0, 5.0]);
        assert_eq!(g.origin_mm(), [189.43125, 199.43125, -761.87]);
        let sum: f64 = d.dose.as_slice().iter().map(|&x| f64::from(x)).sum();
        assert!((sum - 1519.91).abs() < 1e-3, "{name}: {sum}");
        assert!((d.dose[[5, 5, 7]] - 0.975).abs() < 1e-6);
    }
    let one = read_rtdose(data("rtdose_1frame.dcm"), &rel).unwrap();
    assert_eq!(one.dose.grid().dims(), [10, 10, 1]);
}

#[test]
fn rtdose_round_trip_16_and_32_bit() {
    let dir = TempDir::new("rtdose");
    // Third axis opposite to row x column: written with negative offsets.
    let grid = Grid::with_direction(
        [7, 5, 4],
        [2.5, 3.0, 2.0],
        [10.0, -20.0, 5.0],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
    )
    .unwrap();
    let dose = Volume::from_fn(grid.clone(), |[i, j, k]| 70.0 * ((i * j + k) as f32 / 28.0));
    for bits in [16u16, 32] {
        let p = dir.path().join(format!("d{bits}.dcm"));
        write_rtdose(
            &p,
            &dose,
            &RtDoseWriteOptions {
                bits,
                referenced_plan_uid: Some("1.2.3.4".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let back = read_rtdose(&p, &RtDoseReadOptions::default()).unwrap();
        assert_eq!(back.summation, DoseSummation::Plan);
        assert_eq!(back.referenced_plan_uid.as_deref(), Some("1.2.3.4"));
        assert_grid_close(back.dose.grid(), &grid, 1e-9);
        let max = 70.0 * 28.0 / 28.0;
        let step = max / if bits == 16 { 65535.0 } else { 4_294_967_295.0 };
        for (a, b) in back.dose.as_slice().iter().zip(dose.as_slice()) {
            assert!(
                f64::from((a - b).abs()) <= step / 2.0 * 1.001 + 1e-5,
                "{bits}: {a} vs {b}"
            );
        }
    }
    let neg = dose.map(|&d| d - 1.0);
    let e = write_rtdose(
        dir.path().join("neg.dcm"),
        &neg,
        &RtDoseWriteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

// ---------------------------------------------------------------- RTPLAN

fn step_and_shoot(beam: usize) -> Sequence {
    let n = 4;
    let ap = |l: [f64; 4], r: [f64; 4], w: f64| Aperture {
        left_mm: l.to_vec(),
        right_mm: r.to_vec(),
        weight: w,
    };
    Sequence::step_and_shoot(
        beam,
        5.0,
        -7.5,
        n,
        vec![
            ap([-20.0, -15.0, -10.0, 0.0], [20.0, 15.0, 10.0, 0.0], 1.5),
            ap([-5.0, -5.0, 0.0, 0.0], [5.0, 10.0, 0.0, 0.0], 0.75),
            ap([0.0, -2.5, -2.5, -10.0], [0.0, 2.5, 2.5, 10.0], 0.25),
        ],
    )
    .unwrap()
}

#[test]
fn rtplan_round_trip() {
    let dir = TempDir::new("rtplan");
    let beams = vec![
        Beam::new("G0", 0.0, 0.0, 0.0, [1.0, 2.0, 3.0]).unwrap(),
        Beam::new("G72", 72.0, 10.0, 45.0, [1.0, 2.0, 3.0])
            .unwrap()
            .with_sad_mm(1000.0)
            .unwrap(),
    ];
    let sliding = Sequence {
        beam: 1,
        leaf_width_mm: 10.0,
        first_leaf_center_mm: -5.0,
        kind: DeliveryKind::SlidingWindow,
        apertures: Vec::new(),
        trajectory: (0..5)
            .map(|c| ControlPoint {
                cumulative_meterset_weight: c as f64 / 4.0,
                left_mm: vec![-20.0 + 5.0 * c as f64; 2],
                right_mm: vec![-10.0 + 6.0 * c as f64; 2],
            })
            .collect(),
        total_weight: 3.0,
    };
    let seqs = vec![step_and_shoot(0), sliding.clone()];
    let p = dir.path().join("plan.dcm");
    let uid = write_rtplan(
        &p,
        &RtPlanToWrite {
            beams: &beams,
            sequences: &seqs,
            fractions: 30,
            mu_per_unit_weight: 100.0,
            patient_position: PatientPosition::FFS,
            label: "boost".into(),
            machine: "LINAC".into(),
            energy_mv: 6.0,
            patient: PatientInfo {
                name: "Test^Patient".into(),
                id: "42".into(),
            },
            study_uid: None,
            frame_of_reference_uid: Some("1.2.3".into()),
            referenced_structure_set_uid: Some("1.2.3.9".into()),
            syntax: WriteSyntax::ExplicitLittle,
        },
    )
    .unwrap();
    let plan = read_rtplan(&p).unwrap();
    assert_eq!(plan.sop_instance_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(plan.fractions, 30);
    assert_eq!(plan.patient_position, Some(PatientPosition::FFS));
    assert_eq!(
        plan.referenced_structure_set_uid.as_deref(),
        Some("1.2.3.9")
    );
    assert_eq!(plan.beams.len(), 2);
    assert_eq!(plan.beams[1].beam, beams[1]);
    // MU per fraction = total weight x 100 MU / 30 fractions (DESIGN.md).
    assert!((plan.beams[0].meterset_mu - 2.5 * 100.0 / 30.0).abs() < 1e-9);
    assert!((plan.beams[1].meterset_mu - 3.0 * 100.0 / 30.0).abs() < 1e-9);
    assert_eq!(plan.beams[0].energy_mv, Some(6.0));
    assert_eq!(plan.beams[0].jaws_x_mm, Some([-20.0, 20.0]));
    assert_eq!(plan.beams[0].jaws_y_mm, Some([-10.0, 10.0]));
    let s0 = plan.beams[0].to_sequence(0, 100.0, 30).unwrap();
    let want = step_and_shoot(0);
    assert_eq!(s0.kind, DeliveryKind::StepAndShoot);
    assert_eq!(s0.apertures.len(), 3);
    for (a, b) in s0.apertures.iter().zip(&want.apertures) {
        assert_eq!(a.left_mm, b.left_mm);
        assert_eq!(a.right_mm, b.right_mm);
        assert!((a.weight - b.weight).abs() < 1e-9);
    }
    assert!(
        (s0.leaf_width_mm - 5.0).abs() < 1e-12 && (s0.first_leaf_center_mm + 7.5).abs() < 1e-12
    );
    let s1 = plan.beams[1].to_sequence(1, 100.0, 30).unwrap();
    assert_eq!(s1.kind, DeliveryKind::SlidingWindow);
    assert_eq!(s1.trajectory, sliding.trajectory);
    assert!((s1.total_weight - 3.0).abs() < 1e-9);
}

#[test]
fn pydicom_rtplan_without_mlc() {
    // rtplan.dcm: one STATIC beam "Field 1", 30 fractions, 116.0036697 MU,
    // jaws X and Y at +-100 mm, gantry 0, no MLC.
    let plan = read_rtplan(data("rtplan.dcm")).unwrap();
    assert_eq!(plan.fractions, 30);
    let b = &plan.beams[0];
    assert_eq!(b.beam.name(), "Field 1");
    assert!((b.meterset_mu - 116.0036697).abs() < 1e-9);
    assert_eq!(b.jaws_x_mm, Some([-100.0, 100.0]));
    assert_eq!(b.machine, "unit001");
    let e = b.to_sequence(0, 100.0, 30).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = read_rtplan(data("CT_small.dcm")).unwrap_err();
    assert!(matches!(e, Error::WrongModality { .. }), "{e}");
}

// ---------------------------------------------------------------- REG

#[test]
fn registration_brings_pet_onto_the_planning_ct() {
    let dir = TempDir::new("reg");
    let ct_frame = "1.2.826.0.1.1";
    let pet_frame = "1.2.826.0.1.2";
    // PET point -> CT point: rotate 20 degrees about z, shift (5, -3, 12) mm.
    let pet_to_ct =
        AffineTransform::rigid([0.0, 0.0, 20f64.to_radians()], [5.0, -3.0, 12.0]).unwrap();
    let p = dir.path().join("reg.dcm");
    write_registration(
        &p,
        ct_frame,
        &[
            (ct_frame.to_string(), AffineTransform::identity()),
            (pet_frame.to_string(), pet_to_ct.clone()),
        ],
        &PatientInfo::default(),
        None,
        WriteSyntax::ImplicitLittle,
    )
    .unwrap();
    let reg = read_registration(&p).unwrap();
    assert_eq!(reg.frame_of_reference_uid, ct_frame);
    assert_eq!(reg.frames[1].matrix_type, "RIGID");
    let ct_to_pet = reg.transform(ct_frame, pet_frame).unwrap();
    let q = [10.0, -4.0, 7.0];
    let back = pet_to_ct.apply(ct_to_pet.apply(q));
    assert!((0..3).all(|c| (back[c] - q[c]).abs() < 1e-9));
    // A PET that is linear in its own coordinates resamples exactly.
    let f = |p: [f64; 3]| 2.0 * p[0] - p[1] + 0.5 * p[2] + 100.0;
    let pet_grid = Grid::new([30, 30, 20], [2.0; 3], [-30.0, -30.0, -20.0]).unwrap();
    let pet = Volume::from_fn(pet_grid.clone(), |v| f(pet_grid.voxel_center(v)) as f32);
    let ct_grid = Grid::new([6, 6, 4], [3.0; 3], [-8.0, -8.0, 0.0]).unwrap();
    let on_ct = pet.resample_through(&ct_grid, &ct_to_pet, Interpolation::Linear, f32::NAN);
    for k in 0..4 {
        for j in 0..6 {
            for i in 0..6 {
                let want = f(ct_to_pet.apply(ct_grid.voxel_center([i, j, k])));
                assert!(
                    (f64::from(on_ct[[i, j, k]]) - want).abs() < 1e-3,
                    "{i} {j} {k}"
                );
            }
        }
    }
    // A RIGID matrix that scales is refused.
    edit_dicom(&p, |o| {
        let items = |obj: &dicom_object::InMemDicomObject, tag| {
            obj.get(tag).unwrap().items().unwrap().to_vec()
        };
        let mut seq = items(o, tags::REGISTRATION_SEQUENCE);
        let mut mr = items(&seq[1], tags::MATRIX_REGISTRATION_SEQUENCE);
        let mut m = items(&mr[0], tags::MATRIX_SEQUENCE);
        let scaled = [
            2.0, 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.,
        ];
        m[0].put(dicom_core::DataElement::new(
            tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX,
            VR::DS,
            ds_values(&scaled),
        ));
        m[0].put_str(
            tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX_TYPE,
            VR::CS,
            "RIGID",
        );
        let seq_el = |tag, items: Vec<dicom_object::InMemDicomObject>| {
            dicom_core::DataElement::new(
                tag,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(items),
            )
        };
        mr[0].put(seq_el(tags::MATRIX_SEQUENCE, m));
        seq[1].put(seq_el(tags::MATRIX_REGISTRATION_SEQUENCE, mr));
        o.put(seq_el(tags::REGISTRATION_SEQUENCE, seq));
    });
    let e = read_registration(&p).unwrap_err();
    assert!(matches!(e, Error::InvalidTag { .. }), "{e}");
}

// ---------------------------------------------------------------- cache and npz

/// A full beamlet layout of 5 x 5 mm beamlets over beams of
/// `(rows, columns, x0_mm, y0_mm)`.
fn layout(beams: &[(usize, usize, f64, f64)]) -> BeamletLayout {
    let grids = beams
        .iter()
        .map(|&(n_rows, n_cols, x0_mm, y0_mm)| BeamGrid {
            n_rows,
            n_cols,
            x0_mm,
            y0_mm,
        })
        .collect();
    BeamletLayout::full(grids, 5.0, 5.0).unwrap()
}

fn small_influence() -> DoseInfluence {
    let grid = Grid::new([5, 4, 3], [2.0; 3], [0.0; 3]).unwrap();
    let layout = layout(&[(2, 3, -5.0, -2.5), (1, 2, 0.0, 0.0)]);
    let voxels: Vec<u32> = (0..60).filter(|v| v % 3 != 1).collect();
    let triplets: Vec<(u32, u32, f32)> = (0..voxels.len() as u32)
        .flat_map(|r| {
            (0..8u32)
                .filter(move |c| (r + c) % 3 == 0)
                .map(move |c| (r, c, 0.01 * (r * 8 + c) as f32 + 0.5))
        })
        .collect();
    DoseInfluence::from_triplets(grid, voxels, layout, triplets).unwrap()
}

#[test]
fn influence_cache_round_trip_and_corruption() {
    let dir = TempDir::new("cache");
    let d = small_influence();
    let p = dir.path().join("d.dpinf");
    write_influence_cache(&p, &d, "test").unwrap();
    let back = read_influence_cache(&p).unwrap();
    assert_eq!(back, d);
    // Any single flipped bit is caught.
    let bytes = std::fs::read(&p).unwrap();
    for at in [3, 9, 20, bytes.len() / 2, bytes.len() - 6, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let r = dosepaint_io::cache::read_cache_from(&b[..], b.len() as u64, "flipped");
        assert!(r.is_err(), "flip at {at} not detected");
    }
}

#[test]
fn cache_files_written_by_python_from_the_spec() {
    // good_cache.dpinf was written by scripts/make_bad_files.py from the
    // documented layout: rows for voxels 0 and 3, D = [[1, 0.5], [0, 2]].
    let d = read_influence_cache(data("good_cache.dpinf")).unwrap();
    assert_eq!(d.voxels(), &[0, 3]);
    assert_eq!(d.dose(&[2.0, 4.0]).unwrap(), vec![4.0, 8.0]);
    let e = read_influence_cache(bad("cache_corrupt.dpinf")).unwrap_err();
    assert!(matches!(e, Error::Checksum { .. }), "{e}");
    let e = read_influence_cache(bad("cache_version2.dpinf")).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CacheVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = read_influence_cache(bad("cache_truncated.dpinf")).unwrap_err();
    assert!(matches!(e, Error::Cache { .. }), "{e}");
}

#[test]
fn matrad_npz_import_converts_voxel_order() {
    // scripts/make_bad_files.py: cube [ny, nx, nz] = [2, 3, 2], entry (m, b) =
    // 100 b + m + 1 for matRad rows m in {0, 1, 4, 7, 11}.
    let grid = Grid::new([3, 2, 2], [3.0; 3], [0.0; 3]).unwrap();
    let layout = layout(&[(1, 2, 0.0, 0.0)]);
    for name in ["matrad_csc.npz", "matrad_csr.npz"] {
        let d = import_npz(data(name), grid.clone(), layout.clone(), VoxelOrder::MatRad).unwrap();
        assert_eq!(d.n_rows(), 5);
        for m in [0u64, 1, 4, 7, 11] {
            let n = matrad_to_linear(m, grid.dims()).unwrap() as u32;
            let r = d.row_of_voxel(n).unwrap();
            let (cols, vals) = d.row(r);
            assert_eq!(cols, &[0, 1]);
            assert_eq!(vals, &[(m + 1) as f32, (101 + m) as f32], "{name} m = {m}");
        }
        // m = 1 is (i, j, k) = (0, 1, 0): linear index 3.
        assert!(d.row_of_voxel(3).is_some());
    }
    let e = import_npz(
        bad("npz_wrong_shape.npz"),
        grid.clone(),
        layout.clone(),
        VoxelOrder::MatRad,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = import_npz(bad("npz_not_zip.npz"), grid, layout, VoxelOrder::MatRad).unwrap_err();
    assert!(matches!(e, Error::Npy { .. }), "{e}");
}

// ---------------------------------------------------------------- random bytes

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let grid = Grid::new([2, 2, 1], [1.0; 3], [0.0; 3]).unwrap();
        let layout = layout(&[(1, 2, 0.0, 0.0)]);
        prop_assert!(nifti_from_bytes(&bytes, "r").is_err());
        prop_assert!(dosepaint_io::dicom::parse_dataset_bytes(&bytes, "r").is_err());
        prop_assert!(dosepaint_io::dicom::decode_pixel_bytes(&bytes, "r").is_err());
        prop_assert!(dosepaint_io::dicom::read_rtdose_bytes(&bytes, "r", &RtDoseReadOptions::default()).is_err());
        prop_assert!(dosepaint_io::dicom::read_rtstruct_bytes(&bytes, "r").is_err());
        prop_assert!(dosepaint_io::dicom::read_rtplan_bytes(&bytes, "r").is_err());
        prop_assert!(dosepaint_io::dicom::read_registration_bytes(&bytes, "r").is_err());
        prop_assert!(dosepaint_io::cache::read_cache_from(&bytes[..], bytes.len() as u64, "r").is_err());
        prop_assert!(dosepaint_io::npz::import_npz_from(std::io::Cursor::new(&bytes), "r", grid, layout, VoxelOrder::MatRad).is_err());
    }

    #[test]
    fn mutated_files_never_panic(seed in any::<u64>(), flips in 1usize..12) {
        // Valid files with a few random bytes changed: Ok or Err, never a panic.
        let files = ["rtdose_1frame.dcm", "rtstruct.dcm", "rtplan.dcm", "MR_small.dcm"];
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        let name = files[(next() % files.len() as u64) as usize];
        let mut bytes = std::fs::read(data(name)).unwrap();
        for _ in 0..flips {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let _ = dosepaint_io::dicom::read_rtdose_bytes(&bytes, name, &relative_dose_ok());
        let _ = dosepaint_io::dicom::read_rtstruct_bytes(&bytes, name);
        let _ = dosepaint_io::dicom::read_rtplan_bytes(&bytes, name);
        let _ = dosepaint_io::dicom::decode_pixel_bytes(&bytes, name);
        let grid = Grid::new([3, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
        let v = Volume::from_fn(grid, |[i, j, k]| (i + j + k) as f32);
        let mut n = dosepaint_io::nifti::nifti_bytes(&v, &NiftiWriteOptions::default()).unwrap();
        for _ in 0..flips {
            let at = (next() % n.len() as u64) as usize;
            n[at] = next() as u8;
        }
        let _ = nifti_from_bytes(&n, "mutated");
    }
}
