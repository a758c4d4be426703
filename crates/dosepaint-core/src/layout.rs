//! Beamlets: which beam, leaf-pair row and column each beamlet belongs to.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The beamlet (bixel) grid of one beam in its beam's-eye-view plane at the
/// isocentre: `n_rows` leaf-pair rows along BEV y, `n_cols` columns along
/// leaf travel (BEV x).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BeamGrid {
    /// Number of rows (leaf pairs).
    pub n_rows: usize,
    /// Number of columns (positions along leaf travel).
    pub n_cols: usize,
    /// BEV x (mm) of the centre of column 0.
    pub x0_mm: f64,
    /// BEV y (mm) of the centre of row 0 (the most negative row).
    pub y0_mm: f64,
}

/// One beamlet: its beam and position in that beam's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Beamlet {
    /// Index of the beam in the plan.
    pub beam: u32,
    /// Row (leaf pair), 0 at the most negative BEV y.
    pub row: u32,
    /// Column along leaf travel, 0 at the most negative BEV x.
    pub col: u32,
}

/// Every beamlet of a plan: which beam, row and column it is, with the bixel
/// width (along leaf travel) and the leaf width (row height), both in mm at
/// the isocentre plane.
///
/// Beamlets are kept sorted by (beam, row, col), so each beam's beamlets are
/// a contiguous range of the weight vector. Not every grid position needs a
/// beamlet (only those that see the target).
///
/// ```
/// use dosepaint_core::{BeamGrid, Beamlet, BeamletLayout};
/// let grid = BeamGrid { n_rows: 2, n_cols: 3, x0_mm: -5.0, y0_mm: -2.5 };
/// let layout = BeamletLayout::full(vec![grid], 5.0, 5.0)?;
/// assert_eq!(layout.len(), 6);
/// assert_eq!(layout.index_of(0, 1, 2), Some(5));
/// assert_eq!(layout.center_mm(5), [5.0, 2.5]);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LayoutSpec", into = "LayoutSpec")]
pub struct BeamletLayout {
    bixel_width_mm: f64,
    leaf_width_mm: f64,
    beams: Vec<BeamGrid>,
    beamlets: Vec<Beamlet>,
    /// Start of each beam's range in `beamlets`, plus the total at the end.
    beam_starts: Vec<usize>,
    /// Per beam, row-major grid position -> beamlet index (`u32::MAX` if none).
    lookup: Vec<Vec<u32>>,
}

#[derive(Serialize, Deserialize)]
struct LayoutSpec {
    bixel_width_mm: f64,
    leaf_width_mm: f64,
    beams: Vec<BeamGrid>,
    beamlets: Vec<Beamlet>,
}

impl TryFrom<LayoutSpec> for BeamletLayout {
    type Error = Error;
    fn try_from(s: LayoutSpec) -> Result<Self> {
        BeamletLayout::new(s.beams, s.beamlets, s.bixel_width_mm, s.leaf_width_mm)
    }
}

impl From<BeamletLayout> for LayoutSpec {
    fn from(l: BeamletLayout) -> Self {
        LayoutSpec {
            bixel_width_mm: l.bixel_width_mm,
            leaf_width_mm: l.leaf_width_mm,
            beams: l.beams,
            beamlets: l.beamlets,
        }
    }
}

const ABSENT: u32 = u32::MAX;

impl BeamletLayout {
    /// A layout from beam grids and a list of beamlets (any order; they are
    /// sorted).
    ///
    /// # Errors
    /// Non-positive widths, a beamlet outside its beam's grid or naming a beam
    /// that does not exist, duplicate beamlets, or more than `u32::MAX - 1`.
    pub fn new(
        beams: Vec<BeamGrid>,
        mut beamlets: Vec<Beamlet>,
        bixel_width_mm: f64,
        leaf_width_mm: f64,
    ) -> Result<Self> {
        for (what, w) in [
            ("bixel width", bixel_width_mm),
            ("leaf width", leaf_width_mm),
        ] {
            if !(w.is_finite() && w > 0.0) {
                return Err(Error::invalid(what, format!("{w} mm must be positive")));
            }
        }
        for (b, g) in beams.iter().enumerate() {
            if !(g.x0_mm.is_finite() && g.y0_mm.is_finite()) {
                return Err(Error::invalid(
                    "beam grid",
                    format!("beam {b}: origin ({}, {}) mm not finite", g.x0_mm, g.y0_mm),
                ));
            }
        }
        if beamlets.len() >= ABSENT as usize {
            return Err(Error::invalid(
                "beamlet layout",
                "more than u32::MAX - 1 beamlets",
            ));
        }
        beamlets.sort_unstable();
        let mut lookup: Vec<Vec<u32>> = beams
            .iter()
            .map(|g| vec![ABSENT; g.n_rows * g.n_cols])
            .collect();
        let mut beam_starts = vec![0usize; beams.len() + 1];
        for (n, bl) in beamlets.iter().enumerate() {
            let g = beams
                .get(bl.beam as usize)
                .ok_or_else(|| Error::IndexOutOfRange {
                    context: "beamlet's beam".into(),
                    index: bl.beam.to_string(),
                    bound: format!("0..{}", beams.len()),
                })?;
            if bl.row as usize >= g.n_rows || bl.col as usize >= g.n_cols {
                return Err(Error::IndexOutOfRange {
                    context: format!("beamlet of beam {}", bl.beam),
                    index: format!("(row {}, col {})", bl.row, bl.col),
                    bound: format!("{} rows x {} cols", g.n_rows, g.n_cols),
                });
            }
            let slot = &mut lookup[bl.beam as usize][bl.row as usize * g.n_cols + bl.col as usize];
            if *slot != ABSENT {
                return Err(Error::invalid(
                    "beamlet layout",
                    format!("duplicate beamlet {bl:?}"),
                ));
            }
            *slot = n as u32;
            beam_starts[bl.beam as usize + 1] += 1;
        }
        for b in 0..beams.len() {
            beam_starts[b + 1] += beam_starts[b];
        }
        Ok(Self {
            bixel_width_mm,
            leaf_width_mm,
            beams,
            beamlets,
            beam_starts,
            lookup,
        })
    }

    /// A layout with a beamlet at every position of every beam grid.
    ///
    /// # Errors
    /// As [`BeamletLayout::new`].
    pub fn full(beams: Vec<BeamGrid>, bixel_width_mm: f64, leaf_width_mm: f64) -> Result<Self> {
        let mut beamlets = Vec::new();
        for (b, g) in beams.iter().enumerate() {
            for row in 0..g.n_rows {
                for col in 0..g.n_cols {
                    beamlets.push(Beamlet {
                        beam: b as u32,
                        row: row as u32,
                        col: col as u32,
                    });
                }
            }
        }
        Self::new(beams, beamlets, bixel_width_mm, leaf_width_mm)
    }

    /// Number of beamlets.
    pub fn len(&self) -> usize {
        self.beamlets.len()
    }

    /// Whether there is no beamlet.
    pub fn is_empty(&self) -> bool {
        self.beamlets.is_empty()
    }

    /// Number of beams.
    pub fn n_beams(&self) -> usize {
        self.beams.len()
    }

    /// Bixel width along leaf travel, mm at the isocentre.
    pub fn bixel_width_mm(&self) -> f64 {
        self.bixel_width_mm
    }

    /// Leaf width (row height), mm at the isocentre.
    pub fn leaf_width_mm(&self) -> f64 {
        self.leaf_width_mm
    }

    /// All beam grids.
    pub fn beam_grids(&self) -> &[BeamGrid] {
        &self.beams
    }

    /// All beamlets, sorted by (beam, row, col).
    pub fn beamlets(&self) -> &[Beamlet] {
        &self.beamlets
    }

    /// The beamlet at weight index `n`.
    pub fn beamlet(&self, n: usize) -> Beamlet {
        self.beamlets[n]
    }

    /// Range of weight indices belonging to `beam`.
    pub fn beam_range(&self, beam: usize) -> std::ops::Range<usize> {
        self.beam_starts[beam]..self.beam_starts[beam + 1]
    }

    /// Weight index of the beamlet at (beam, row, col), if there is one.
    pub fn index_of(&self, beam: usize, row: usize, col: usize) -> Option<usize> {
        let g = self.beams.get(beam)?;
        if row >= g.n_rows || col >= g.n_cols {
            return None;
        }
        match self.lookup[beam][row * g.n_cols + col] {
            ABSENT => None,
            n => Some(n as usize),
        }
    }

    /// BEV centre `(x, y)` in mm of beamlet `n` at the isocentre plane.
    pub fn center_mm(&self, n: usize) -> [f64; 2] {
        let bl = self.beamlets[n];
        let g = &self.beams[bl.beam as usize];
        [
            g.x0_mm + f64::from(bl.col) * self.bixel_width_mm,
            g.y0_mm + f64::from(bl.row) * self.leaf_width_mm,
        ]
    }

    /// Pairs of neighbouring beamlets (same beam, adjacent along a row or a
    /// column), each pair once with the lower index first.
    pub fn neighbour_pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for (n, bl) in self.beamlets.iter().enumerate() {
            let (b, r, c) = (bl.beam as usize, bl.row as usize, bl.col as usize);
            if let Some(m) = self.index_of(b, r, c + 1) {
                pairs.push((n, m));
            }
            if let Some(m) = self.index_of(b, r + 1, c) {
                pairs.push((n, m));
            }
        }
        pairs
    }

    /// The fluence map of one beam, `n_rows x n_cols` in row-major order, from
    /// a weight vector over all beamlets (positions without a beamlet are 0).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `weights` does not have one entry per
    /// beamlet, [`Error::IndexOutOfRange`] for a beam that does not exist.
    pub fn fluence_map(&self, weights: &[f64], beam: usize) -> Result<Vec<f64>> {
        if weights.len() != self.len() {
            return Err(Error::shape("beamlet weights", self.len(), weights.len()));
        }
        let g = self.beams.get(beam).ok_or_else(|| Error::IndexOutOfRange {
            context: "beam".into(),
            index: beam.to_string(),
            bound: format!("0..{}", self.beams.len()),
        })?;
        let mut map = vec![0.0; g.n_rows * g.n_cols];
        for n in self.beam_range(beam) {
            let bl = self.beamlets[n];
            map[bl.row as usize * g.n_cols + bl.col as usize] = weights[n];
        }
        Ok(map)
    }
}
