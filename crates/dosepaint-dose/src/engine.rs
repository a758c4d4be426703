//! The `DoseEngine` and `PreparedBeam` traits: prepare a beam once, then
//! compute any beamlet's column; the whole matrix is a provided method.

use std::ops::Range;

use dosepaint_core::{Beam, BeamletLayout, DoseInfluence, InfluenceBuilder};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{DoseRows, Error, PatientModel, Result};

/// One beamlet's column of the dose-influence matrix: dose (Gy per unit
/// weight) in each listed row. Reused between beamlets to avoid allocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeamletColumn {
    /// Row indices (into the [`DoseRows`]), ascending.
    pub rows: Vec<u32>,
    /// Dose per unit weight in each row.
    pub values: Vec<f32>,
}

impl BeamletColumn {
    /// Empties the column, keeping its allocation.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.values.clear();
    }
}

/// Receives computed columns: `(beamlet, rows, values)`, rows ascending.
pub type ColumnSink<'a> = dyn FnMut(usize, &[u32], &[f32]) -> Result<()> + 'a;

/// A fluence map in a beam's isocentre plane: a regular grid of rectangular
/// pixels (BEV x along columns, BEV y along rows), values in beamlet-weight
/// units (fluence 1 over a bixel = beamlet weight 1).
///
/// It may be the beamlet grid itself ([`FluenceMap::from_weights`]), a finer
/// map of a delivered leaf sequence, or one open rectangle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FluenceMapSpec", into = "FluenceMapSpec")]
pub struct FluenceMap(FluenceMapSpec);

/// The fields of a [`FluenceMap`] (also its serialized form), unchecked:
/// [`FluenceMapSpec::check`] is the only way to a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FluenceMapSpec {
    x0_mm: f64,
    y0_mm: f64,
    dx_mm: f64,
    dy_mm: f64,
    n_cols: usize,
    n_rows: usize,
    values: Vec<f64>,
}

impl FluenceMapSpec {
    /// Validates the fields once; the map is trusted from then on.
    fn check(self) -> Result<FluenceMap> {
        let (dx, dy) = (self.dx_mm, self.dy_mm);
        if !(dx.is_finite() && dx > 0.0 && dy.is_finite() && dy > 0.0) {
            return Err(Error::invalid(
                "fluence map pixel size",
                format!("{dx} x {dy} mm"),
            ));
        }
        let (n_rows, n_cols) = (self.n_rows, self.n_cols);
        if n_cols == 0 || n_rows == 0 {
            return Err(Error::invalid(
                "fluence map",
                format!("{n_rows} x {n_cols} pixels: a map needs at least one pixel"),
            ));
        }
        let (x0, y0) = (self.x0_mm, self.y0_mm);
        if !(x0.is_finite() && y0.is_finite()) {
            return Err(Error::invalid(
                "fluence map origin",
                format!("({x0}, {y0}) mm"),
            ));
        }
        let values = &self.values;
        if values.len() != n_rows * n_cols {
            return Err(Error::invalid(
                "fluence map",
                format!("{} values for {n_rows} x {n_cols} pixels", values.len()),
            ));
        }
        if let Some(n) = values.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::invalid(
                "fluence map",
                format!(
                    "value {} at row {}, column {} must be finite and non-negative",
                    values[n],
                    n / n_cols,
                    n % n_cols
                ),
            ));
        }
        Ok(FluenceMap(self))
    }
}

impl TryFrom<FluenceMapSpec> for FluenceMap {
    type Error = Error;
    fn try_from(spec: FluenceMapSpec) -> Result<Self> {
        spec.check()
    }
}

impl From<FluenceMap> for FluenceMapSpec {
    fn from(map: FluenceMap) -> Self {
        map.0
    }
}

impl FluenceMap {
    /// A map whose pixel `(row, col)` is centred at
    /// `(x0 + col dx, y0 + row dy)`, values row-major.
    ///
    /// # Errors
    /// Non-positive pixel sizes, an empty map, a non-finite origin, a wrong
    /// number of values, or a negative or non-finite value (naming the pixel).
    pub fn new(
        x0_mm: f64,
        y0_mm: f64,
        dx_mm: f64,
        dy_mm: f64,
        n_cols: usize,
        n_rows: usize,
        values: Vec<f64>,
    ) -> Result<Self> {
        FluenceMapSpec {
            x0_mm,
            y0_mm,
            dx_mm,
            dy_mm,
            n_cols,
            n_rows,
            values,
        }
        .check()
    }

    /// The fluence of beam `beam` on its beamlet grid from plan weights.
    ///
    /// # Errors
    /// Wrong weight count, an unknown beam, or a negative weight.
    pub fn from_weights(layout: &BeamletLayout, weights: &[f64], beam: usize) -> Result<Self> {
        let values = layout.fluence_map(weights, beam)?;
        let g = layout.beam_grids()[beam];
        Self::new(
            g.x0_mm,
            g.y0_mm,
            layout.bixel_width_mm(),
            layout.leaf_width_mm(),
            g.n_cols,
            g.n_rows,
            values,
        )
    }

    /// One open rectangle `[x1, x2] x [y1, y2]` (isocentre plane) of
    /// fluence `value`.
    ///
    /// # Errors
    /// An empty or non-finite rectangle, or a bad value.
    pub fn rectangle(x1: f64, x2: f64, y1: f64, y2: f64, value: f64) -> Result<Self> {
        if !(x2 > x1 && y2 > y1) {
            return Err(Error::invalid(
                "open field",
                format!("[{x1}, {x2}] x [{y1}, {y2}] mm is empty"),
            ));
        }
        Self::new(
            0.5 * (x1 + x2),
            0.5 * (y1 + y2),
            x2 - x1,
            y2 - y1,
            1,
            1,
            vec![value],
        )
    }

    /// BEV x of the centre of column 0 (mm).
    pub fn x0_mm(&self) -> f64 {
        self.0.x0_mm
    }
    /// BEV y of the centre of row 0 (mm).
    pub fn y0_mm(&self) -> f64 {
        self.0.y0_mm
    }
    /// Pixel width along x (mm).
    pub fn dx_mm(&self) -> f64 {
        self.0.dx_mm
    }
    /// Pixel height along y (mm).
    pub fn dy_mm(&self) -> f64 {
        self.0.dy_mm
    }
    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.0.n_cols
    }
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.0.n_rows
    }
    /// Values, row-major.
    pub fn values(&self) -> &[f64] {
        &self.0.values
    }
}

/// A beam prepared by an engine: computes the column of any of its beamlets.
///
/// Implementations hold whatever per-beam data they need (radiological
/// depths, lookup structures) and must be usable from many threads at once.
pub trait PreparedBeam: Send + Sync {
    /// Index of the beam in the plan (and in the layout).
    fn beam_index(&self) -> usize;

    /// Weight indices of this beam's beamlets in the layout.
    fn beamlet_range(&self) -> Range<usize>;

    /// Fills `out` with the column of beamlet `beamlet` (a weight index in
    /// [`PreparedBeam::beamlet_range`]): rows ascending, dose in Gy per unit
    /// weight.
    ///
    /// # Errors
    /// A beamlet of another beam.
    fn column(&self, beamlet: usize, out: &mut BeamletColumn) -> Result<()>;

    /// Groups of beamlets that are cheaper to compute together (e.g. one
    /// leaf pair): [`DoseEngine::influence`] runs the groups in parallel.
    /// Default: one group per beamlet.
    fn column_batches(&self) -> Vec<Range<usize>> {
        self.beamlet_range().map(|j| j..j + 1).collect()
    }

    /// Computes the columns of the beamlets in `batch` and hands each to
    /// `emit(beamlet, rows, values)` (rows ascending). Default: one
    /// [`PreparedBeam::column`] call per beamlet.
    ///
    /// # Errors
    /// A beamlet of another beam, or the first error of `emit`.
    fn batch_columns(&self, batch: Range<usize>, emit: &mut ColumnSink<'_>) -> Result<()> {
        let mut col = BeamletColumn::default();
        for j in batch {
            self.column(j, &mut col)?;
            emit(j, &col.rows, &col.values)?;
        }
        Ok(())
    }

    /// Adds to `dose` (one entry per row) the dose of this beam delivering
    /// `fluence`. Engines that cannot evaluate arbitrary maps return
    /// [`Error::Unsupported`] (the default).
    ///
    /// # Errors
    /// A dose slice of the wrong length, or an unsupported map.
    fn fluence_dose(&self, fluence: &FluenceMap, dose: &mut [f64]) -> Result<()> {
        let _ = (fluence, dose);
        Err(Error::Unsupported(
            "this engine does not compute the dose of a fluence map".into(),
        ))
    }
}

/// A dose engine: does the per-beam work once in [`DoseEngine::prepare_beam`];
/// the dose-influence matrix and beam doses follow from the provided methods.
///
/// Object safe: hold one as `Box<dyn DoseEngine + Send + Sync>`.
pub trait DoseEngine: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> String;

    /// Prepares beam `beam_index` (`beam`, with the beamlets of `layout`)
    /// for computing dose in `rows` of `patient`.
    ///
    /// # Errors
    /// Engine-specific: geometry the engine cannot handle, a beam missing
    /// the patient, an isocentre outside the CT.
    fn prepare_beam(
        &self,
        patient: &PatientModel,
        rows: &DoseRows,
        layout: &BeamletLayout,
        beam_index: usize,
        beam: &Beam,
    ) -> Result<Box<dyn PreparedBeam>>;

    /// The dose-influence matrix of `beams` over `rows`: beams are prepared
    /// one at a time (so only one beam's data is alive), and each beam's
    /// beamlets run in parallel (rayon), each column streaming into core's
    /// [`InfluenceBuilder`] as soon as it is computed.
    ///
    /// # Errors
    /// `beams` and `layout` disagree, or any error of
    /// [`DoseEngine::prepare_beam`] or [`PreparedBeam::column`].
    fn influence(
        &self,
        patient: &PatientModel,
        rows: &DoseRows,
        beams: &[Beam],
        layout: &BeamletLayout,
    ) -> Result<DoseInfluence> {
        check_beams(beams, layout)?;
        let builder =
            InfluenceBuilder::new(rows.grid().clone(), rows.voxels().to_vec(), layout.clone())?;
        for (b, beam) in beams.iter().enumerate() {
            let prepared = self.prepare_beam(patient, rows, layout, b, beam)?;
            prepared
                .column_batches()
                .into_par_iter()
                .try_for_each(|batch| -> Result<()> {
                    prepared.batch_columns(batch, &mut |j, r, v| {
                        builder.add_column(j, r, v)?;
                        Ok(())
                    })
                })?;
        }
        Ok(builder.finish()?)
    }

    /// Dose per row (Gy) of beam `beam_index` delivering `fluence`, computed
    /// from the model directly (no matrix): e.g. to check a leaf sequence.
    ///
    /// # Errors
    /// As [`DoseEngine::prepare_beam`] and [`PreparedBeam::fluence_dose`].
    fn beam_dose(
        &self,
        patient: &PatientModel,
        rows: &DoseRows,
        beams: &[Beam],
        layout: &BeamletLayout,
        beam_index: usize,
        fluence: &FluenceMap,
    ) -> Result<Vec<f64>> {
        check_beams(beams, layout)?;
        let beam = beams.get(beam_index).ok_or_else(|| {
            Error::invalid(
                "beam index",
                format!("{beam_index} with {} beams", beams.len()),
            )
        })?;
        let prepared = self.prepare_beam(patient, rows, layout, beam_index, beam)?;
        let mut dose = vec![0.0; rows.len()];
        prepared.fluence_dose(fluence, &mut dose)?;
        Ok(dose)
    }
}

fn check_beams(beams: &[Beam], layout: &BeamletLayout) -> Result<()> {
    if beams.len() != layout.n_beams() {
        return Err(Error::invalid(
            "beams",
            format!(
                "{} beams but the beamlet layout has {}",
                beams.len(),
                layout.n_beams()
            ),
        ));
    }
    Ok(())
}
