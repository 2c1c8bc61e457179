"""Reading and writing files, one module per idea (their public names are re-exported by :mod:`mr2ct.data`):

- :mod:`~mr2ct.io.readers`: MR / CT volume readers (NIfTI, NRRD, MetaImage, DICOM series) with errors naming
  the file, volume listing and data lists;
- :mod:`~mr2ct.io.video`: video files (PyAV) and folders of frames, read and written;
- :mod:`~mr2ct.io.nifti`: the one NIfTI writer (:func:`~mr2ct.io.nifti.write_nifti`) and what builds on it;
- :mod:`~mr2ct.io.atomic`: atomic writes of files and folders, used by every writer of the package.
"""
