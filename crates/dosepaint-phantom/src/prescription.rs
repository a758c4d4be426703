//! The reference (painted) prescription of a phantom: a plain linear dose
//! painting by numbers from the phantom's own intent.

use dosepaint_core::{Prescription, Provenance};

use crate::{Error, PaintingIntent, Phantom, Result};

/// The linear dose-painting-by-numbers map of Bentzen (2005):
/// `D(I) = D_low + (I - I_low) / (I_high - I_low) (D_high - D_low)`,
/// `D_low` below `I_low` and `D_high` above `I_high`
/// (/work/shared/reference/dose_painting.md).
///
/// ```
/// use dosepaint_phantom::linear_dpbn_gy;
/// assert!((linear_dpbn_gy(1.65, 1.3, 2.0, 70.0, 84.0) - 77.0).abs() < 1e-12);
/// assert!((linear_dpbn_gy(0.9, 1.3, 2.0, 70.0, 84.0) - 70.0).abs() < 1e-12);
/// assert!((linear_dpbn_gy(3.0, 1.3, 2.0, 70.0, 84.0) - 84.0).abs() < 1e-12);
/// ```
pub fn linear_dpbn_gy(
    image: f64,
    image_low: f64,
    image_high: f64,
    dose_low_gy: f64,
    dose_high_gy: f64,
) -> f64 {
    let t = ((image - image_low) / (image_high - image_low)).clamp(0.0, 1.0);
    dose_low_gy + t * (dose_high_gy - dose_low_gy)
}

fn check_painting(p: &PaintingIntent) -> Result<()> {
    if !(p.image_low.is_finite() && p.image_high.is_finite() && p.image_high > p.image_low) {
        return Err(Error::invalid(
            "painting image window",
            format!(
                "need finite image_low < image_high, got {} and {}",
                p.image_low, p.image_high
            ),
        ));
    }
    if !(p.dose_low_gy.is_finite()
        && p.dose_high_gy.is_finite()
        && p.dose_low_gy > 0.0
        && p.dose_high_gy >= p.dose_low_gy)
    {
        return Err(Error::invalid(
            "painting dose range",
            format!(
                "need finite 0 < dose_low_gy <= dose_high_gy, got {} and {} Gy",
                p.dose_low_gy, p.dose_high_gy
            ),
        ));
    }
    Ok(())
}

/// The intended painted prescription of a phantom whose intent has a
/// [`PaintingIntent`] (the head-and-neck phantom): the base dose in the
/// target structure, and inside the painted region the linear map
/// [`linear_dpbn_gy`] of the painting image (which is never below the base
/// dose there, since the map's floor is `dose_low_gy`: the region gets
/// `max(base, D(I))`). Fractions from the intent.
///
/// For [`crate::head_neck`] this is 70 Gy in the PTV outside the GTV and
/// 70-84 Gy inside the GTV following the FMISO tumour-to-blood ratio
/// (1.3 -> 70 Gy, 2.0 -> 84 Gy), in 35 fractions. The phantom is built so
/// that at least 10 % of the GTV is prescribed more than 80 Gy, the largest
/// in-GTV gradient exceeds 2 Gy/mm and the maximum reaches 84 Gy (pinned by
/// tests; the numbers are in the intent's [`PaintingIntent`]).
///
/// This is a reference, not the mapping library: `dosepaint-biomap` owns
/// the general image-to-dose mappings.
///
/// ```
/// use dosepaint_phantom::{head_neck_with_spacing, head_neck_reference_prescription};
/// let p = head_neck_with_spacing([4.0, 4.0, 4.0])?;
/// let rx = head_neck_reference_prescription(&p)?;
/// assert_eq!(rx.fractions(), 35);
/// let s = rx.target_gy().stats();
/// assert!(s.max > 83.9 && s.max < 84.0 + 1e-4);
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] if the intent has no painting or an invalid
/// window; [`Error::UnknownStructure`] / [`Error::MissingImage`] if the
/// phantom lacks the structures or image it names; a core error for a
/// non-finite image value in the painted region or a mismatched grid.
pub fn head_neck_reference_prescription(phantom: &Phantom) -> Result<Prescription> {
    let intent = &phantom.intent;
    let painting = intent.painting.as_ref().ok_or_else(|| {
        Error::invalid(
            "prescription intent",
            format!("phantom \"{}\" has no painting intent", phantom.name),
        )
    })?;
    check_painting(painting)?;
    if !(intent.base_dose_gy.is_finite() && intent.base_dose_gy > 0.0) {
        return Err(Error::invalid(
            "base_dose_gy",
            format!("{} Gy must be positive and finite", intent.base_dose_gy),
        ));
    }
    let target = phantom.structure(&intent.target)?;
    let region = phantom.structure(&painting.region)?;
    let image = phantom.image(painting.image)?;
    let grid = phantom.grid();
    grid.ensure_same(target.grid(), "painted prescription: target vs CT")?;
    grid.ensure_same(region.grid(), "painted prescription: region vs CT")?;
    grid.ensure_same(image.grid(), "painted prescription: image vs CT")?;
    region.ensure_not_empty("dose painting")?;

    let base = intent.base_dose_gy;
    let mut dose = Vec::with_capacity(grid.n_voxels());
    for (n, ((&in_target, &in_region), &value)) in target
        .mask()
        .as_slice()
        .iter()
        .zip(region.mask().as_slice())
        .zip(image.as_slice())
        .enumerate()
    {
        let d = if in_region {
            let v = f64::from(value);
            if !v.is_finite() {
                return Err(dosepaint_core::Error::NonFinite {
                    context: format!("{} image in region {}", painting.image, painting.region),
                    location: format!("voxel {:?}", grid.voxel_index(n)),
                }
                .into());
            }
            linear_dpbn_gy(
                v,
                painting.image_low,
                painting.image_high,
                painting.dose_low_gy,
                painting.dose_high_gy,
            )
            .max(base)
        } else if in_target {
            base
        } else {
            0.0
        };
        dose.push(d as f32);
    }
    let map = dosepaint_core::Volume::from_vec(grid.clone(), dose)?;
    let spec = format!(
        "{{\"kind\":\"linear_dpbn\",\"phantom\":\"{}\",\"seed\":{},\"target\":\"{}\",\
         \"base_dose_gy\":{},\"region\":\"{}\",\"image\":\"{:?}\",\"image_low\":{},\
         \"image_high\":{},\"dose_low_gy\":{},\"dose_high_gy\":{},\"fractions\":{}}}",
        phantom.name,
        phantom
            .seed
            .map_or_else(|| "null".to_string(), |s| s.to_string()),
        intent.target,
        base,
        painting.region,
        painting.image,
        painting.image_low,
        painting.image_high,
        painting.dose_low_gy,
        painting.dose_high_gy,
        intent.fractions
    );
    Ok(Prescription::new(
        map,
        intent.fractions,
        Provenance {
            description: format!(
                "linear DPbN from {} in {}: {} -> {} Gy, {} -> {} Gy; {} Gy elsewhere in {}; \
                 {} fractions",
                painting.image,
                painting.region,
                painting.image_low,
                painting.dose_low_gy,
                painting.image_high,
                painting.dose_high_gy,
                base,
                intent.target,
                intent.fractions
            ),
            spec,
        },
    )?)
}
