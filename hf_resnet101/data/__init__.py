"""Data: image folders and Hub datasets, the scan, the data report, image decoding and the transforms."""
