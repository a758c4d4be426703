//! Integration tests of the head-and-neck phantom, its functional images and
//! its reference (painted) prescription.

use std::time::Instant;

use dosepaint_core::{Structure, StructureRole, Volume};
use dosepaint_phantom::{
    Error, HeadNeckParams, ImageKind, Phantom, centroid_mm, head_neck,
    head_neck_reference_prescription, head_neck_with, head_neck_with_spacing, tg119_with_spacing,
};

/// Equality of two points or spacings to 1e-12 mm.
fn close3(a: [f64; 3], b: [f64; 3]) -> bool {
    (0..3).all(|c| (a[c] - b[c]).abs() < 1e-12)
}

fn min_distance_mm(a: &Structure, b: &Structure) -> f64 {
    let g = a.grid();
    let centres = |s: &Structure| -> Vec<[f64; 3]> {
        s.voxel_indices()
            .iter()
            .map(|&n| g.voxel_center(g.voxel_index(n as usize)))
            .collect()
    };
    let (pa, pb) = (centres(a), centres(b));
    let mut best = f64::INFINITY;
    for p in &pa {
        for q in &pb {
            best = best.min((0..3).map(|c| (p[c] - q[c]).powi(2)).sum::<f64>());
        }
    }
    best.sqrt()
}

fn subset(inner: &Structure, outer: &Structure) -> bool {
    inner.difference(outer).unwrap().is_empty()
}

fn values_in(img: &Volume<f32>, s: &Structure) -> Vec<f64> {
    s.voxel_indices()
        .iter()
        .map(|&n| f64::from(img.as_slice()[n as usize]))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Largest gradient magnitude (Gy/mm) of a dose map inside a structure, by
/// central differences over the voxel spacing in mm, at voxels whose six
/// neighbours are inside the structure too.
fn max_gradient_gy_per_mm(dose: &Volume<f32>, s: &Structure) -> f64 {
    let g = dose.grid();
    let dims = g.dims();
    let sp = g.spacing_mm();
    let mask = s.mask();
    let mut best: f64 = 0.0;
    'voxels: for n in s.voxel_indices() {
        let v = g.voxel_index(n as usize);
        let mut g2 = 0.0;
        for a in 0..3 {
            if v[a] == 0 || v[a] + 1 >= dims[a] {
                continue 'voxels;
            }
            let (mut lo, mut hi) = (v, v);
            lo[a] -= 1;
            hi[a] += 1;
            if !(mask[lo] && mask[hi]) {
                continue 'voxels;
            }
            let d = (f64::from(dose[hi]) - f64::from(dose[lo])) / (2.0 * sp[a]);
            g2 += d * d;
        }
        best = best.max(g2.sqrt());
    }
    best
}

#[test]
fn default_build_is_fast_and_has_the_documented_grid() {
    let t0 = Instant::now();
    let p = head_neck().unwrap();
    let s = t0.elapsed().as_secs_f64();
    assert!(s < 2.0, "head_neck() took {s} s in the dev profile");
    assert_eq!(p.grid().dims(), [101, 101, 61]);
    assert!(close3(p.grid().spacing_mm(), [2.5, 2.5, 3.0]));
    assert_eq!(p.seed, Some(dosepaint_phantom::HEAD_NECK_SEED));
    assert_eq!(p.position, dosepaint_core::PatientPosition::HFS);
    assert_eq!(
        p.structure_names(),
        [
            "Body",
            "PTV",
            "GTV",
            "Hypoxic",
            "SpinalCord",
            "Parotid_L",
            "Parotid_R",
            "Mandible"
        ]
    );
    for n in ["PTV", "GTV", "Hypoxic"] {
        assert_eq!(p.structure(n).unwrap().role(), StructureRole::Target);
    }
    for n in ["SpinalCord", "Parotid_L", "Parotid_R", "Mandible"] {
        assert_eq!(p.structure(n).unwrap().role(), StructureRole::OrganAtRisk);
    }
    assert_eq!(p.structure("Body").unwrap().role(), StructureRole::External);
    // Every image lives on the CT grid.
    for k in p.images.kinds() {
        assert_eq!(p.image(k).unwrap().grid(), p.grid());
    }
    assert_eq!(p.images.kinds().len(), 4);
}

#[test]
fn structure_relations_volumes_and_distances() {
    let p = head_neck().unwrap();
    let st = |n: &str| p.structure(n).unwrap();
    let (body, ptv, gtv, hyp) = (st("Body"), st("PTV"), st("GTV"), st("Hypoxic"));
    let (cord, pl, pr, mand) = (
        st("SpinalCord"),
        st("Parotid_L"),
        st("Parotid_R"),
        st("Mandible"),
    );
    // Nesting.
    assert!(subset(hyp, gtv) && subset(gtv, ptv) && subset(ptv, body));
    for oar in [cord, pl, pr, mand] {
        assert!(subset(oar, body), "{}", oar.name());
        assert!(oar.intersection(ptv).unwrap().is_empty(), "{}", oar.name());
    }
    // PTV = GTV + 5 mm: at least the margin shell of a ~19 cm^3 tumour.
    let (v_gtv, v_ptv, v_hyp) = (gtv.volume_cm3(), ptv.volume_cm3(), hyp.volume_cm3());
    assert!((15.0..25.0).contains(&v_gtv), "GTV {v_gtv}");
    assert!(v_ptv > 1.6 * v_gtv && v_ptv < 3.0 * v_gtv, "PTV {v_ptv}");
    assert!((0.15..0.35).contains(&(v_hyp / v_gtv)), "hypoxic fraction");
    // Parotids: about 18 cm^3 each (adult glands are 15-30 cm^3), mirror
    // images of each other.
    for g in [pl, pr] {
        assert!((14.0..25.0).contains(&g.volume_cm3()), "{}", g.name());
    }
    assert_eq!(pl.voxel_count(), pr.voxel_count());
    // Cord 1-2 cm posterior of the PTV (y grows posteriorly in LPS).
    let d_cord = min_distance_mm(cord, ptv);
    assert!((10.0..=20.0).contains(&d_cord), "cord-PTV {d_cord} mm");
    let c_cord = centroid_mm(cord).unwrap();
    let c_ptv = centroid_mm(ptv).unwrap();
    assert!(c_cord[1] > c_ptv[1] + 25.0);
    // Ipsilateral (right, -x) parotid within a centimetre or two, lateral
    // and posterior of the PTV; the contralateral one farther but within 4 cm.
    let d_r = min_distance_mm(pr, ptv);
    let d_l = min_distance_mm(pl, ptv);
    assert!((3.0..=20.0).contains(&d_r), "right parotid-PTV {d_r} mm");
    assert!((20.0..=40.0).contains(&d_l), "left parotid-PTV {d_l} mm");
    let c_r = centroid_mm(pr).unwrap();
    let c_l = centroid_mm(pl).unwrap();
    assert!(c_r[0] < c_ptv[0] - 25.0 && c_r[1] > c_ptv[1] + 10.0);
    assert!(c_l[0] > c_ptv[0] + 25.0 && c_l[1] > c_ptv[1] + 10.0);
    // The isocentre is the PTV centroid; 7 equispaced beams aim at it.
    assert!((0..3).all(|a| (p.isocenter_mm[a] - c_ptv[a]).abs() < 1e-9));
    assert_eq!(p.beams.len(), 7);
    for (b, beam) in p.beams.iter().enumerate() {
        assert!((beam.gantry_deg() - 360.0 * b as f64 / 7.0).abs() < 1e-9);
        assert!(close3(beam.isocenter_mm(), p.isocenter_mm));
    }
}

#[test]
fn ct_numbers_and_anatomy() {
    let p = head_neck().unwrap();
    let ct = &p.ct;
    let s = ct.stats();
    assert!((s.min + 1000.0).abs() < 1e-6 && (s.max - 1000.0).abs() < 1e-6);
    let body = p.structure("Body").unwrap();
    let inside = values_in(ct, body);
    // Soft tissue dominates the neck; bone (>= 700 HU) and internal air
    // (-1000 HU inside the body: airway and oral cavity) are present.
    assert!((median(inside.clone()) - 40.0).abs() < 1e-6);
    let bone = inside.iter().filter(|&&h| h >= 700.0).count();
    let air = inside.iter().filter(|&&h| h <= -999.0).count();
    let vox = p.grid().voxel_volume_cm3();
    assert!(bone as f64 * vox > 50.0, "bone {} cm^3", bone as f64 * vox);
    assert!(air as f64 * vox > 15.0, "air {} cm^3", air as f64 * vox);
    // Outside the body: air.
    for (&h, &b) in ct.as_slice().iter().zip(body.mask().as_slice()) {
        if !b {
            assert!((h + 1000.0).abs() < 1e-6);
        }
    }
    // Tumour, cord and mandible have their own CT numbers.
    for (name, hu) in [("GTV", 55.0), ("SpinalCord", 35.0), ("Mandible", 1000.0)] {
        let v = values_in(ct, p.structure(name).unwrap());
        assert!(v.iter().all(|&h| (h - hu).abs() < 1e-6), "{name}");
    }
    // The cord lies inside the vertebra: in every axial slice, walking 16 mm
    // from the cord's centre in 8 in-plane directions meets bone.
    let g = p.grid();
    let cord_c = centroid_mm(p.structure("SpinalCord").unwrap()).unwrap();
    for k in 0..g.dims()[2] {
        let z = g.voxel_center([0, 0, k])[2];
        for dir in 0..8 {
            let phi = f64::from(dir) * std::f64::consts::FRAC_PI_4;
            let hit = (0..=32).any(|step| {
                let r = 0.5 * f64::from(step);
                let pt = [cord_c[0] + r * phi.cos(), cord_c[1] + r * phi.sin(), z];
                ct.sample_linear(pt).is_some_and(|h| h >= 700.0)
            });
            assert!(hit, "slice {k}, direction {dir}: no bone around the cord");
        }
    }
}

#[test]
fn functional_images_have_realistic_ranges_and_contrast() {
    let p = head_neck().unwrap();
    let st = |n: &str| p.structure(n).unwrap();
    let (body, gtv, hyp) = (st("Body"), st("GTV"), st("Hypoxic"));
    let normoxic = gtv.difference(hyp).unwrap();
    // Background: body voxels at least 2 cm from the PTV.
    let near = st("PTV").dilate([20.0; 3]).unwrap();
    let background = body.difference(&near).unwrap();
    for k in p.images.kinds() {
        let img = p.image(k).unwrap();
        img.ensure_finite("phantom image").unwrap();
        assert!(img.stats().min >= 0.0, "{k} has negative values");
    }

    // FDG SUV: background about 1, tumour SUVmax 8-12, strong contrast.
    let fdg = p.image(ImageKind::FdgSuv).unwrap();
    let bg = median(values_in(fdg, &background));
    let t = values_in(fdg, gtv);
    assert!((0.6..=1.3).contains(&bg), "FDG background {bg}");
    assert!((8.0..=12.0).contains(&max(&t)), "FDG SUVmax {}", max(&t));
    assert!(mean(&t) > 4.0 * bg);
    // Heterogeneous: the tumour's coefficient of variation exceeds 15 %.
    let m = mean(&t);
    let sd = (t.iter().map(|v| (v - m).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
    assert!(sd / m > 0.15, "FDG CV {}", sd / m);

    // FMISO TBR: background about 1, hypoxic core 1.6-2.5 (max up to ~2.6
    // with noise), normoxic tumour well below the hypoxic core.
    let fmiso = p.image(ImageKind::FmisoTbr).unwrap();
    let bg = median(values_in(fmiso, &background));
    assert!((0.8..=1.2).contains(&bg), "FMISO background {bg}");
    let h = values_in(fmiso, hyp);
    assert!((1.6..=2.5).contains(&median(h.clone())), "hypoxic median");
    assert!((2.0..=2.8).contains(&max(&h)), "hypoxic max {}", max(&h));
    let n = values_in(fmiso, &normoxic);
    assert!(mean(&h) > 1.3 * mean(&n));

    // FLT SUV: tumour proliferates (2.5-5), hypoxic core less, marrow high.
    let flt = p.image(ImageKind::FltSuv).unwrap();
    let t = values_in(flt, gtv);
    assert!((2.5..=5.0).contains(&mean(&t)), "FLT tumour {}", mean(&t));
    assert!(mean(&values_in(flt, hyp)) < mean(&values_in(flt, &normoxic)));
    assert!(median(values_in(flt, &background)) < 1.0);
    assert!(flt.stats().max > 5.0, "marrow uptake");

    // ADC (mm^2/s): tumour 0.8-1.2e-3, soft tissue about 1.5e-3, CSF up to
    // about 3e-3 (reduced by the 3 mm blur in a 2.5 mm-wide canal ring).
    let adc = p.image(ImageKind::Adc).unwrap();
    let t = median(values_in(adc, gtv));
    assert!((0.8e-3..=1.2e-3).contains(&t), "ADC tumour {t}");
    let muscle: Vec<f64> = background
        .voxel_indices()
        .iter()
        .filter(|&&i| (p.ct.as_slice()[i as usize] - 40.0).abs() < 1e-3)
        .map(|&i| f64::from(adc.as_slice()[i as usize]))
        .collect();
    let mm = median(muscle);
    assert!((1.35e-3..=1.65e-3).contains(&mm), "ADC muscle {mm}");
    let amax = adc.stats().max;
    assert!((2.2e-3..=3.2e-3).contains(&amax), "ADC max {amax}");
}

#[test]
fn same_seed_gives_identical_bytes_and_seeds_change_only_images() {
    let params = HeadNeckParams {
        spacing_mm: [4.0, 4.0, 4.0],
        ..HeadNeckParams::default()
    };
    let a = head_neck_with(&params).unwrap();
    let b = head_neck_with(&params).unwrap();
    let bits = |p: &Phantom| -> Vec<u32> {
        let mut out: Vec<u32> = p.ct.as_slice().iter().map(|v| v.to_bits()).collect();
        for k in p.images.kinds() {
            out.extend(p.image(k).unwrap().as_slice().iter().map(|v| v.to_bits()));
        }
        out
    };
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a, b);
    let c = head_neck_with(&HeadNeckParams {
        seed: 7,
        ..params.clone()
    })
    .unwrap();
    assert_eq!(a.ct, c.ct);
    assert_eq!(a.structures, c.structures);
    assert_ne!(a.images.fdg_suv, c.images.fdg_suv);
    assert_ne!(a.images.fmiso_tbr, c.images.fmiso_tbr);
    // Noise model: SD = r sqrt(v v_ref) with r = 0.05, v_ref = 1 for FMISO,
    // so 0.05 where the noise-free TBR is exactly 1 (muscle far from edges).
    let quiet = head_neck_with(&HeadNeckParams {
        noise: false,
        ..params
    })
    .unwrap();
    let q = quiet.image(ImageKind::FmisoTbr).unwrap().as_slice();
    let noisy = a.image(ImageKind::FmisoTbr).unwrap().as_slice();
    let resid: Vec<f64> = q
        .iter()
        .zip(noisy)
        .filter(|(qv, _)| (**qv - 1.0).abs() < 1e-4)
        .map(|(qv, nv)| f64::from(*nv) - f64::from(*qv))
        .collect();
    assert!(resid.len() > 1000, "{} flat voxels", resid.len());
    let m = mean(&resid);
    let sd = (resid.iter().map(|r| (r - m).powi(2)).sum::<f64>() / resid.len() as f64).sqrt();
    assert!(m.abs() < 0.005, "noise mean {m}");
    assert!((sd - 0.05).abs() < 0.005, "noise SD {sd}");
    // A JSON round trip keeps everything.
    let json = serde_json::to_string(&a).unwrap();
    let back: Phantom = serde_json::from_str(&json).unwrap();
    // serde_json's default float parser may be off by one ulp on arbitrary
    // f64 (the centroid); voxel data and structures must come back exactly.
    assert_eq!(a.ct, back.ct);
    assert_eq!(a.structures, back.structures);
    assert_eq!(a.images, back.images);
    assert_eq!(a.intent, back.intent);
    assert_eq!(a.seed, back.seed);
    for (x, y) in a.isocenter_mm.iter().zip(back.isocenter_mm) {
        assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0));
    }
    assert_eq!(a.beams.len(), back.beams.len());
}

/// The pinned properties of the intended painted prescription
/// (Lee et al. 2008, 84 Gy to the FMISO-hypoxic subvolume with 70 Gy to the
/// rest; linear DPbN of Bentzen 2005; /work/shared/reference/dose_painting.md).
fn check_reference_prescription(p: &Phantom) {
    let rx = head_neck_reference_prescription(p).unwrap();
    let painting = p.intent.painting.as_ref().unwrap();
    assert_eq!(rx.fractions(), 35);
    let d = rx.target_gy();
    let ptv = p.structure("PTV").unwrap();
    let gtv = p.structure("GTV").unwrap();
    // Outside the PTV: nothing prescribed; PTV outside GTV: exactly 70 Gy.
    for (n, &dose) in d.as_slice().iter().enumerate() {
        let in_ptv = ptv.mask().as_slice()[n];
        let in_gtv = gtv.mask().as_slice()[n];
        if !in_ptv {
            assert!(dose.abs() < 1e-9);
        } else if !in_gtv {
            assert!((dose - 70.0).abs() < 1e-4);
        }
    }
    let g = values_in(d, gtv);
    let min_gtv = g.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((min_gtv - 70.0).abs() < 1e-4, "GTV min {min_gtv}");
    assert!(max(&g) >= 84.0 - 1e-4, "GTV max {}", max(&g));
    let above = g
        .iter()
        .filter(|&&v| v > painting.high_dose_threshold_gy)
        .count() as f64
        / g.len() as f64;
    assert!(
        above >= painting.min_fraction_above_threshold,
        "only {above} of the GTV above 80 Gy"
    );
    let grad = max_gradient_gy_per_mm(d, gtv);
    assert!(
        grad >= painting.min_peak_gradient_gy_per_mm,
        "peak gradient {grad} Gy/mm"
    );
}

#[test]
fn reference_prescription_pinned_properties() {
    let p = head_neck().unwrap();
    let painting = p.intent.painting.as_ref().unwrap();
    assert_eq!(painting.image, ImageKind::FmisoTbr);
    assert!((painting.dose_low_gy - 70.0).abs() < 1e-12);
    assert!(painting.dose_high_gy >= 84.0);
    assert!(painting.high_dose_threshold_gy >= 80.0);
    assert!(painting.min_fraction_above_threshold >= 0.10);
    assert!(painting.min_peak_gradient_gy_per_mm >= 2.0);
    assert!((p.intent.base_dose_gy - 70.0).abs() < 1e-12);
    assert_eq!(p.intent.fractions, 35);
    for goal in &p.intent.goals {
        p.structure(&goal.structure).unwrap();
    }
    check_reference_prescription(&p);
    let rx = head_neck_reference_prescription(&p).unwrap();
    assert!(rx.provenance().spec.contains("\"kind\":\"linear_dpbn\""));
}

#[test]
fn reference_prescription_holds_for_other_seeds_and_without_noise() {
    for (seed, noise) in [
        (1, true),
        (2, true),
        (dosepaint_phantom::HEAD_NECK_SEED, false),
    ] {
        let p = head_neck_with(&HeadNeckParams {
            seed,
            noise,
            ..HeadNeckParams::default()
        })
        .unwrap();
        check_reference_prescription(&p);
    }
}

#[test]
fn errors_are_named() {
    // No painting intent.
    let t = tg119_with_spacing([8.0; 3]).unwrap();
    assert!(matches!(
        head_neck_reference_prescription(&t),
        Err(Error::InvalidParameter { .. })
    ));
    // Missing image.
    let mut p = head_neck_with_spacing([5.0; 3]).unwrap();
    p.images.fmiso_tbr = None;
    match head_neck_reference_prescription(&p) {
        Err(Error::MissingImage { image, .. }) => assert_eq!(image, ImageKind::FmisoTbr),
        other => panic!("expected MissingImage, got {other:?}"),
    }
    // A NaN in the painting image is refused with its voxel.
    let mut p = head_neck_with_spacing([5.0; 3]).unwrap();
    let gtv_voxel = p.structure("GTV").unwrap().voxel_indices()[0] as usize;
    p.images.fmiso_tbr.as_mut().unwrap().as_slice_mut()[gtv_voxel] = f32::NAN;
    let err = head_neck_reference_prescription(&p).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    // Parameter validation.
    let bad = [
        HeadNeckParams {
            spacing_mm: [2.5, 0.0, 3.0],
            ..HeadNeckParams::default()
        },
        HeadNeckParams {
            pet_fwhm_mm: f64::NAN,
            ..HeadNeckParams::default()
        },
        HeadNeckParams {
            adc_fwhm_mm: -1.0,
            ..HeadNeckParams::default()
        },
        HeadNeckParams {
            ptv_margin_mm: 20.0,
            ..HeadNeckParams::default()
        },
        HeadNeckParams {
            n_beams: 0,
            ..HeadNeckParams::default()
        },
    ];
    for params in bad {
        assert!(
            matches!(head_neck_with(&params), Err(Error::InvalidParameter { .. })),
            "{params:?}"
        );
    }
    // The coarsest accepted spacing still builds every structure, or says
    // which one came out empty.
    match head_neck_with_spacing([8.0; 3]) {
        Ok(p) => assert!(p.structures.iter().all(|s| !s.is_empty())),
        Err(Error::EmptyStructure { structure, .. }) => assert!(!structure.is_empty()),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn bad_painting_intents_are_refused_by_name() {
    // Each documented error of `head_neck_reference_prescription` on an
    // intent edited after the build (the fields are public).
    let base = head_neck_with_spacing([5.0; 3]).unwrap();
    let with = |edit: &dyn Fn(&mut Phantom)| {
        let mut p = base.clone();
        edit(&mut p);
        head_neck_reference_prescription(&p).unwrap_err()
    };
    fn painting(p: &mut Phantom) -> &mut dosepaint_phantom::PaintingIntent {
        p.intent.painting.as_mut().unwrap()
    }
    // An inverted or empty image window.
    for (lo, hi) in [(2.0, 1.3), (1.3, 1.3), (f64::NAN, 2.0)] {
        let e = with(&|p| {
            let w = painting(p);
            (w.image_low, w.image_high) = (lo, hi);
        });
        assert!(
            matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("window"),
            "{e}"
        );
    }
    // A dose range that is not 0 < low <= high.
    for (lo, hi) in [(0.0, 84.0), (84.0, 70.0), (70.0, f64::INFINITY)] {
        let e = with(&|p| {
            let w = painting(p);
            (w.dose_low_gy, w.dose_high_gy) = (lo, hi);
        });
        assert!(e.to_string().contains("dose range"), "{e}");
    }
    // A base dose that is not positive.
    for d in [0.0, -70.0, f64::NAN] {
        let e = with(&|p| p.intent.base_dose_gy = d);
        assert!(e.to_string().contains("base_dose_gy"), "{e}");
    }
    // Unknown target or painted region: the error lists the structures.
    let e = with(&|p| p.intent.target = "CTV".into());
    assert!(
        matches!(e, Error::UnknownStructure { .. }) && e.to_string().contains("PTV"),
        "{e}"
    );
    let e = with(&|p| painting(p).region = "GTV2".into());
    assert!(matches!(e, Error::UnknownStructure { .. }), "{e}");
}
