"""Image loading (the one decoder), folder scanning and the built-in sample gallery."""

from semcopy_lib.data.loading import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageLoadError,
    is_image_path,
    load_image,
    to_rgb,
)
from semcopy_lib.data.folders import GalleryFile, NoImages, gallery_id_for, read_files, scan_folder, scan_images

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "GalleryFile",
    "ImageLoadError",
    "NoImages",
    "gallery_id_for",
    "is_image_path",
    "load_image",
    "read_files",
    "scan_folder",
    "scan_images",
    "to_rgb",
]
