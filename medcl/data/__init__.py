"""Readers, data sets, splits, label fractions, built-in data and augmentations."""

from medcl.data._augment import PairedAugment, TwoViews
from medcl.data._builtin import BUILTIN_DATASETS, load_brain_aal, load_builtin
from medcl.data._digest import split_fingerprint
from medcl.data._dsb2018 import (
    APPEARANCE_GROUPS,
    DSB2018_CLASSES,
    acquisition_groups,
    appearance_group,
    load_dsb2018,
    load_dsb2018_folder,
)
from medcl.data._folder import conform_image, load_folder
from medcl.data._imageset import ImageSet
from medcl.data._intensity import Intensity
from medcl.data._isic import load_isic2017
from medcl.data._medmnist import load_medmnist
from medcl.data._mmwhs import MMWHS_CLASSES, load_mmwhs
from medcl.data._mnist import LabelledImageSet, load_mnist5k, stratified_split
from medcl.data._readers import READERS, SUPPORTED_SUFFIXES, read_image, read_mask, read_volume
from medcl.data._splits import (
    assign_splits,
    kfold_splits,
    label_subset,
    stratified_group_split,
)
from medcl.data._stored import SparseMasks, StoredImages

__all__ = [
    "conform_image",
    "Intensity",
    "APPEARANCE_GROUPS",
    "BUILTIN_DATASETS",
    "DSB2018_CLASSES",
    "MMWHS_CLASSES",
    "READERS",
    "SUPPORTED_SUFFIXES",
    "SparseMasks",
    "StoredImages",
    "ImageSet",
    "LabelledImageSet",
    "PairedAugment",
    "TwoViews",
    "acquisition_groups",
    "appearance_group",
    "assign_splits",
    "kfold_splits",
    "label_subset",
    "load_brain_aal",
    "load_builtin",
    "load_dsb2018",
    "load_dsb2018_folder",
    "load_folder",
    "load_isic2017",
    "load_medmnist",
    "load_mmwhs",
    "load_mnist5k",
    "read_image",
    "read_mask",
    "read_volume",
    "split_fingerprint",
    "stratified_group_split",
    "stratified_split",
]
