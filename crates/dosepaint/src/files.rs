//! Reading the user's own files for a plan (through `dosepaint-io`).

use dosepaint_core::{Grid, Interpolation, PatientPosition, Structure, Volume};
use dosepaint_io::{
    NiftiReadOptions, PetValues, SeriesReadOptions, SeriesSelector, read_nifti, read_rtstruct,
    read_series_dir,
};

use crate::pipeline::overlaps;
use crate::spec::{ImageFile, PlanSpec, StructureFiles};
use crate::{Error, Result};

/// Reads an image as `f32` with its patient position (NIfTI carries none:
/// head-first supine is assumed there, and said so in the docs).
pub(crate) fn read_image(
    spec: &PlanSpec,
    file: &ImageFile,
) -> Result<(Volume<f32>, PatientPosition)> {
    match file {
        ImageFile::Nifti { path } => {
            let path = spec.resolve(path);
            let image = read_nifti(&path, &NiftiReadOptions::default())?;
            Ok((image.to_f32(), PatientPosition::HFS))
        }
        ImageFile::Dicom {
            dir,
            series_uid,
            suv,
        } => {
            let dir = spec.resolve(dir);
            let selector = match series_uid {
                Some(uid) => SeriesSelector::Uid(uid.clone()),
                None => SeriesSelector::Only,
            };
            let options = SeriesReadOptions {
                pet_values: if *suv {
                    PetValues::SuvBw
                } else {
                    PetValues::BqPerMl
                },
                ..SeriesReadOptions::default()
            };
            let image = read_series_dir(&dir, &selector, &options)?;
            let position = image.patient_position.unwrap_or(PatientPosition::HFS);
            Ok((image.data.to_f32(), position))
        }
    }
}

/// Reads the structures onto the CT grid.
pub(crate) fn read_structures(
    spec: &PlanSpec,
    files: &StructureFiles,
    grid: &Grid,
) -> Result<Vec<Structure>> {
    match files {
        StructureFiles::Rtstruct { path, roles } => {
            let rs = read_rtstruct(spec.resolve(path))?;
            let mut out = Vec::new();
            for s in rs.to_structures(grid)? {
                let role = roles.get(s.name()).copied().unwrap_or_else(|| s.role());
                out.push(s.with_role(role));
            }
            Ok(out)
        }
        StructureFiles::NiftiMasks { masks } => masks
            .iter()
            .map(|m| {
                let path = spec.resolve(&m.path);
                let image = read_nifti(&path, &NiftiReadOptions::default())?.to_f32();
                let on_ct = onto_grid(&image, grid, &m.name)?;
                let mask = on_ct.map(|&v| v >= 0.5);
                let role = m.role;
                let s = Structure::new(m.name.clone(), role, mask)?;
                s.ensure_not_empty("a plan")?;
                Ok(s)
            })
            .collect(),
    }
}

/// An image on the CT grid: as is when the grids match, resampled when they
/// overlap, an error when they do not.
pub(crate) fn onto_grid(image: &Volume<f32>, grid: &Grid, name: &str) -> Result<Volume<f32>> {
    if image
        .grid()
        .approx_eq(grid, dosepaint_core::GRID_TOLERANCE_MM)
    {
        return Ok(image.clone());
    }
    if !overlaps(image.grid(), grid) {
        return Err(Error::invalid(
            format!("image \"{name}\""),
            "its grid does not overlap the CT at all: check the file and its orientation",
        ));
    }
    Ok(image.resample(grid, Interpolation::Linear, 0.0))
}
