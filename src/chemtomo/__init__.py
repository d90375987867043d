"""chemtomo: quantitative chemical electron tomography.

From a STEM tilt series of HAADF images and EDS spectrum images, reconstruct 3D maps
of each element (EDS-only SIRT or HAADF-EDS bimodal tomography) and quantify them to
weight and atomic fractions with factors computed from first principles
(Yuan et al., Ultramicroscopy 2020).
"""

__version__ = "0.1.0"
