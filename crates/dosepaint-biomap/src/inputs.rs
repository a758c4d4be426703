//! What a mapping works on: co-registered images on the planning grid, the
//! target structures and the number of fractions.

use std::collections::BTreeMap;

use dosepaint_core::{AffineTransform, Grid, Interpolation, Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Region name that always refers to [`MappingInputs::target`].
pub const TARGET: &str = "target";
/// Region name that always refers to [`MappingInputs::base_region`].
pub const BASE: &str = "base";

/// The inputs of a [`DoseMapping`](crate::DoseMapping): named images (all on
/// one planning grid), the target to paint, an optional base region, named
/// reference regions and the number of fractions.
///
/// Everything is validated when it is added, so mappings can trust it: every
/// image and structure is on the target's grid (within
/// [`dosepaint_core::GRID_TOLERANCE_MM`]), every image value is finite, the
/// target and base region are not empty, and there is at least one fraction.
///
/// Regions are referred to by name in mapping specs: `"target"` is the target,
/// `"base"` the base region, any other name a region added with
/// [`MappingInputs::with_region`] (or the name of the target or base
/// structure itself).
///
/// ```
/// use dosepaint_biomap::MappingInputs;
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// let grid = Grid::new([8, 8, 4], [2.0, 2.0, 3.0], [0.0; 3])?;
/// let gtv = Structure::new("GTV", StructureRole::Target,
///     Volume::from_fn(grid.clone(), |[i, j, _]| (2..6).contains(&i) && (2..6).contains(&j)))?;
/// let fdg = Volume::from_fn(grid.clone(), |[i, _, _]| 1.0 + i as f32);
/// let inputs = MappingInputs::new(gtv, 35)?.with_image("fdg", fdg)?;
/// assert_eq!(inputs.fractions(), 35);
/// assert!(inputs.image("fdg").is_ok());
/// assert!(inputs.image("fmiso").is_err()); // a clear error names the missing image
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MappingInputs {
    images: BTreeMap<String, Volume<f32>>,
    target: Structure,
    base_region: Option<Structure>,
    regions: BTreeMap<String, Structure>,
    fractions: u32,
    /// Linear indices of the voxels of every structure, by region name and
    /// by structure name (computed once, when the structure is added).
    indices: BTreeMap<String, std::sync::Arc<Vec<u32>>>,
    /// The bounding box of every structure, by the same keys.
    windows: BTreeMap<String, Window>,
}

/// An inclusive box of voxel indices `lo..=hi` along x, y and z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl Window {
    /// The box of a set of linear indices (`None` when empty).
    pub(crate) fn of_indices(grid: &Grid, indices: &[u32]) -> Option<Self> {
        let mut lo = [usize::MAX; 3];
        let mut hi = [0usize; 3];
        for &n in indices {
            let v = grid.voxel_index(n as usize);
            for a in 0..3 {
                lo[a] = lo[a].min(v[a]);
                hi[a] = hi[a].max(v[a]);
            }
        }
        (!indices.is_empty()).then_some(Self { lo, hi })
    }

    /// The whole grid.
    pub(crate) fn all(grid: &Grid) -> Self {
        let d = grid.dims();
        Self {
            lo: [0; 3],
            hi: [d[0] - 1, d[1] - 1, d[2] - 1],
        }
    }

    /// Whether `other` lies inside this box.
    pub(crate) fn contains(&self, other: &Self) -> bool {
        (0..3).all(|a| self.lo[a] <= other.lo[a] && other.hi[a] <= self.hi[a])
    }

    /// The smallest box holding both.
    pub(crate) fn union(self, other: Self) -> Self {
        Self {
            lo: [0, 1, 2].map(|a| self.lo[a].min(other.lo[a])),
            hi: [0, 1, 2].map(|a| self.hi[a].max(other.hi[a])),
        }
    }

    /// The z-slices of `data` (slices of `plane` values each) that this box
    /// crosses, with their slice index `k`, for parallel work on the box only.
    pub(crate) fn par_slices_mut<T: Send>(
        self,
        data: &mut [T],
        plane: usize,
    ) -> impl IndexedParallelIterator<Item = (usize, &mut [T])> {
        data.par_chunks_mut(plane)
            .enumerate()
            .skip(self.lo[2])
            .take(self.hi[2] + 1 - self.lo[2])
    }

    /// Grown by `by` voxels along each axis, clipped to the grid.
    pub(crate) fn grown(self, by: [usize; 3], grid: &Grid) -> Self {
        let d = grid.dims();
        Self {
            lo: [0, 1, 2].map(|a| self.lo[a].saturating_sub(by[a])),
            hi: [0, 1, 2].map(|a| (self.hi[a] + by[a]).min(d[a] - 1)),
        }
    }
}

impl MappingInputs {
    /// Inputs painting `target` (e.g. the GTV) in `fractions` fractions.
    ///
    /// # Errors
    /// An empty target or zero fractions.
    pub fn new(target: Structure, fractions: u32) -> Result<Self> {
        target.ensure_not_empty("a dose-painting target")?;
        check_fractions(fractions)?;
        let mut inputs = Self {
            images: BTreeMap::new(),
            target,
            base_region: None,
            regions: BTreeMap::new(),
            fractions,
            indices: BTreeMap::new(),
            windows: BTreeMap::new(),
        };
        let idx = inputs.target.voxel_indices();
        inputs.store_index(TARGET, idx);
        Ok(inputs)
    }

    fn index(&mut self, key: &str, s: &Structure) {
        self.store_index(key, s.voxel_indices());
    }

    fn store_index(&mut self, key: &str, idx: Vec<u32>) {
        if let Some(w) = Window::of_indices(self.grid(), &idx) {
            self.windows.insert(key.to_string(), w);
        }
        self.indices
            .insert(key.to_string(), std::sync::Arc::new(idx));
    }

    /// Adds an image already on the planning grid (e.g. FMISO SUV, an ADC map).
    ///
    /// # Errors
    /// An empty name, a grid other than the target's, or a NaN or infinite
    /// voxel (the message names the image, the first voxel and the count).
    pub fn with_image(mut self, name: impl Into<String>, image: Volume<f32>) -> Result<Self> {
        self.insert_image(name, image)?;
        Ok(self)
    }

    /// In-place form of [`MappingInputs::with_image`]; replaces an image of the
    /// same name.
    ///
    /// # Errors
    /// As [`MappingInputs::with_image`].
    pub fn insert_image(&mut self, name: impl Into<String>, image: Volume<f32>) -> Result<()> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(Error::invalid("image name", "is empty"));
        }
        self.grid().ensure_same(
            image.grid(),
            &format!("image \"{name}\" vs the planning grid"),
        )?;
        image.ensure_finite(&format!("image \"{name}\""))?;
        self.images.insert(name, image);
        Ok(())
    }

    /// Resamples an image from its own grid (and, through `planning_to_image`,
    /// its own frame of reference) onto the planning grid, then adds it. See
    /// [`resample_to_grid`].
    ///
    /// # Errors
    /// As [`resample_to_grid`] and [`MappingInputs::with_image`].
    pub fn with_image_resampled(
        mut self,
        name: impl Into<String>,
        image: &Volume<f32>,
        planning_to_image: Option<&AffineTransform>,
        outside: OutsideSource,
    ) -> Result<Self> {
        let name = name.into();
        let resampled = resample_to_grid(
            &name,
            image,
            self.grid(),
            planning_to_image,
            Interpolation::Linear,
            outside,
        )?;
        self.insert_image(name, resampled.image)?;
        Ok(self)
    }

    /// Sets the base region (e.g. the PTV), which receives a mapping's base
    /// dose outside the painted target.
    ///
    /// # Errors
    /// A grid other than the target's, or an empty structure.
    pub fn with_base_region(mut self, base: Structure) -> Result<Self> {
        self.check_structure(&base, "the base region")?;
        self.index(BASE, &base);
        self.base_region = Some(base);
        Ok(self)
    }

    /// Adds a named reference region (e.g. `"blood"` for an FMISO
    /// tumour-to-blood ratio, `"muscle"`), replacing one of the same name.
    ///
    /// # Errors
    /// An empty or reserved name (`"target"`, `"base"`), a grid other than the
    /// target's, or an empty structure.
    pub fn with_region(mut self, name: impl Into<String>, region: Structure) -> Result<Self> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(Error::invalid("region name", "is empty"));
        }
        if name == TARGET || name == BASE {
            return Err(Error::invalid(
                "region name",
                format!("\"{name}\" is reserved for the target / base region"),
            ));
        }
        self.check_structure(&region, &format!("reference region \"{name}\""))?;
        self.index(&name, &region);
        self.regions.insert(name, region);
        Ok(self)
    }

    /// The same inputs with another number of fractions.
    ///
    /// # Errors
    /// Zero fractions.
    pub fn with_fractions(mut self, fractions: u32) -> Result<Self> {
        check_fractions(fractions)?;
        self.fractions = fractions;
        Ok(self)
    }

    /// The same inputs with another target (the images and regions are kept).
    ///
    /// # Errors
    /// As [`MappingInputs::new`], plus a grid other than the current one.
    pub fn with_target(mut self, target: Structure) -> Result<Self> {
        self.check_structure(&target, "the dose-painting target")?;
        self.index(TARGET, &target);
        self.target = target;
        Ok(self)
    }

    fn check_structure(&self, s: &Structure, what: &str) -> Result<()> {
        self.grid().ensure_same(
            s.grid(),
            &format!("structure \"{}\" ({what}) vs the planning grid", s.name()),
        )?;
        s.ensure_not_empty(what)?;
        Ok(())
    }

    /// The planning grid (the target's grid).
    pub fn grid(&self) -> &Grid {
        self.target.grid()
    }

    /// The region to paint (e.g. the GTV).
    pub fn target(&self) -> &Structure {
        &self.target
    }

    /// The base region (e.g. the PTV), if set.
    pub fn base_region(&self) -> Option<&Structure> {
        self.base_region.as_ref()
    }

    /// Number of fractions.
    pub fn fractions(&self) -> u32 {
        self.fractions
    }

    /// Names of the images, sorted.
    pub fn image_names(&self) -> Vec<&str> {
        self.images.keys().map(String::as_str).collect()
    }

    /// Names of the reference regions, sorted (not counting `"target"` and `"base"`).
    pub fn region_names(&self) -> Vec<&str> {
        self.regions.keys().map(String::as_str).collect()
    }

    /// The image of that name.
    ///
    /// # Errors
    /// [`Error::MissingImage`] listing the available names.
    pub fn image(&self, name: &str) -> Result<&Volume<f32>> {
        self.images.get(name).ok_or_else(|| Error::MissingImage {
            name: name.to_string(),
            available: list(self.images.keys().map(String::as_str)),
        })
    }

    /// The region of that name: `"target"`, `"base"`, a reference region, or
    /// the name of the target or base structure.
    ///
    /// # Errors
    /// [`Error::MissingRegion`] listing the available names.
    pub fn region(&self, name: &str) -> Result<&Structure> {
        let key = self.region_key(name)?;
        Ok(match key {
            TARGET => &self.target,
            BASE => self
                .base_region
                .as_ref()
                .expect("resolved to an existing base region"),
            _ => &self.regions[key],
        })
    }

    /// The key under which a region name resolves (`"target"`, `"base"` or a
    /// reference region's name).
    fn region_key<'a>(&'a self, name: &'a str) -> Result<&'a str> {
        let missing = || Error::MissingRegion {
            name: name.to_string(),
            available: self.available_regions(),
        };
        if name == TARGET {
            return Ok(TARGET);
        }
        if name == BASE {
            return self.base_region.as_ref().map(|_| BASE).ok_or_else(missing);
        }
        if self.regions.contains_key(name) {
            return Ok(name);
        }
        if self.target.name() == name {
            return Ok(TARGET);
        }
        if self.base_region.as_ref().is_some_and(|b| b.name() == name) {
            return Ok(BASE);
        }
        Err(missing())
    }

    /// Linear indices (ascending) of the voxels of the region of that name
    /// (resolved as [`MappingInputs::region`]).
    pub(crate) fn region_indices(&self, name: &str) -> Result<&[u32]> {
        let key = self.region_key(name)?;
        Ok(self.indices[key].as_slice())
    }

    /// The box of the target's voxels.
    pub(crate) fn target_window(&self) -> Window {
        self.windows[TARGET]
    }

    /// The boxes of every structure of the inputs (boxes inside another one
    /// left out): where a mapping may read an image.
    pub(crate) fn structure_windows(&self) -> Vec<Window> {
        let mut all: Vec<Window> = self.windows.values().copied().collect();
        all.sort_by_key(|w| {
            std::cmp::Reverse((0..3).map(|a| w.hi[a] - w.lo[a] + 1).product::<usize>())
        });
        let mut kept: Vec<Window> = Vec::new();
        for w in all {
            if !kept.iter().any(|k| k.contains(&w)) {
                kept.push(w);
            }
        }
        kept
    }

    /// The box of the target and base region's voxels (where mappings write).
    pub(crate) fn prescribed_window(&self) -> Window {
        let t = self.target_window();
        match (self.base_region.is_some(), self.windows.get(BASE)) {
            (true, Some(b)) => t.union(*b),
            _ => t,
        }
    }

    /// Linear indices of the target voxels, ascending.
    pub(crate) fn target_indices(&self) -> &[u32] {
        self.indices[TARGET].as_slice()
    }

    fn available_regions(&self) -> String {
        let mut names = vec![TARGET.to_string()];
        if self.base_region.is_some() {
            names.push(BASE.to_string());
        }
        names.extend(self.regions.keys().cloned());
        names.join(", ")
    }

    /// The target mask in memory order.
    pub(crate) fn target_mask(&self) -> &[bool] {
        self.target.mask().as_slice()
    }

    /// The base-region mask, if any.
    pub(crate) fn base_mask(&self) -> Option<&[bool]> {
        self.base_region.as_ref().map(|b| b.mask().as_slice())
    }
}

fn check_fractions(fractions: u32) -> Result<()> {
    if fractions == 0 {
        Err(Error::invalid("number of fractions", "must be at least 1"))
    } else {
        Ok(())
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// What to do with planning-grid voxels that fall outside the source image
/// when resampling (e.g. a PET field of view shorter than the planning CT).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutsideSource {
    /// Refuse with an error naming how many voxels are not covered.
    Refuse,
    /// Fill them with this value (e.g. 0 for background activity); the count
    /// is returned in [`Resampled::voxels_outside_source`].
    Fill(f32),
}

/// An image resampled onto the planning grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Resampled {
    /// The image on the planning grid.
    pub image: Volume<f32>,
    /// How many planning voxels lay outside the source image (filled, or 0
    /// when [`OutsideSource::Refuse`] let it through).
    pub voxels_outside_source: usize,
}

/// Resamples `image` onto the planning `grid` (trilinear for continuous data),
/// through the rigid or affine map `planning_to_image` from planning
/// coordinates to the image's frame of reference when the image comes from
/// another frame (a DICOM REG), then checks that the result is on `grid`.
///
/// ```
/// use dosepaint_biomap::{resample_to_grid, OutsideSource};
/// use dosepaint_core::{AffineTransform, Grid, Interpolation, Volume};
/// // A PET in its own frame, shifted 10 mm in x from the planning CT.
/// let pet_grid = Grid::new([20, 10, 10], [4.0; 3], [10.0, 0.0, 0.0])?;
/// let pet = Volume::from_fn(pet_grid, |[i, _, _]| i as f32);
/// let planning = Grid::new([10, 5, 5], [4.0; 3], [0.0; 3])?;
/// let to_pet = AffineTransform::translation([10.0, 0.0, 0.0])?;
/// let r = resample_to_grid("pet", &pet, &planning, Some(&to_pet), Interpolation::Linear,
///                          OutsideSource::Refuse)?;
/// assert_eq!(r.image.get([3, 0, 0]), Some(&3.0));
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
///
/// # Errors
/// A non-finite source voxel, a non-finite fill value, or (with
/// [`OutsideSource::Refuse`]) planning voxels outside the source image.
pub fn resample_to_grid(
    name: &str,
    image: &Volume<f32>,
    grid: &Grid,
    planning_to_image: Option<&AffineTransform>,
    interpolation: Interpolation,
    outside: OutsideSource,
) -> Result<Resampled> {
    image.ensure_finite(&format!("source image \"{name}\""))?;
    if let OutsideSource::Fill(v) = outside
        && !v.is_finite()
    {
        return Err(Error::invalid(
            format!("fill value for image \"{name}\""),
            format!("{v} is not finite"),
        ));
    }
    let mut resampled = match planning_to_image {
        Some(t) => image.resample_through(grid, t, interpolation, f32::NAN),
        None => image.resample(grid, interpolation, f32::NAN),
    };
    grid.ensure_same(
        resampled.grid(),
        &format!("resampled image \"{name}\" vs the planning grid"),
    )?;
    let mut count = 0usize;
    let mut first = None;
    for (n, v) in resampled.as_slice_mut().iter_mut().enumerate() {
        if v.is_nan() {
            count += 1;
            first.get_or_insert(n);
            if let OutsideSource::Fill(f) = outside {
                *v = f;
            }
        }
    }
    if let (OutsideSource::Refuse, Some(n)) = (outside, first) {
        return Err(Error::image(
            name,
            format!(
                "{count} planning-grid voxel(s) lie outside the image after registration \
                 (first at voxel {:?}); pass OutsideSource::Fill to fill them",
                grid.voxel_index(n)
            ),
        ));
    }
    Ok(Resampled {
        image: resampled,
        voxels_outside_source: count,
    })
}
