"""Photos in, faces out: how every photo-taking command (score, evaluate, gallery,
embed) loads a photo file for models.Model.

  align="mtcnn" (the commands' default): decode the photo, detect faces with
      MTCNN in one graph (align_graph.Aligner), keep one (FaceNet's rule), warp it
      into CelebA's aligned 178x218 layout;
      the model's crop then frames it as in training. No face: None, never a guess.
  align="none": the photo as it is (photos.load_photo), for photos already
      framed like the training photos (CelebA's aligned crops, records).

A None photo gets no features (NaN) and face probability 0 in models.Model,
so the commands give it no verdict.
"""
from siamese_graph.data import photos
from siamese_graph.errors import DataError
from siamese_graph.faces import align, align_graph

MODES = ("mtcnn", "none")


class PhotoLoader:
    """path -> a photo for models.Model.embed, or None when no face is found."""

    def __init__(self, mode="mtcnn", min_confidence=align.DEFAULT_MIN_CONFIDENCE, detector=None):
        """Args:
          mode: "mtcnn" or "none" (see the module doc).
          min_confidence: MTCNN faces below this confidence do not count.
          detector: an align_graph.Aligner to share; None makes one when needed.
        """
        if mode not in MODES:
            raise ValueError("align mode must be one of %s" % ", ".join(MODES))
        self.mode, self.min_confidence = mode, min_confidence
        self._detector = detector
        self.found = {}  # path -> {"faces": n, "kept": describe(face), "why": ...}; no face: {"faces": 0}

    @property
    def detector(self):
        if self._detector is None:
            try:
                self._detector = align_graph.Aligner(min_confidence=self.min_confidence)
            except ImportError as e:
                raise DataError("face alignment (mtcnn): %s; or align none for photos already "
                                "framed like the training photos" % e)
        return self._detector

    def __call__(self, path):
        if self.mode == "none":
            return photos.load_photo(path)
        try:
            _, im, _ = photos.read(path)
            rgb = photos.to_rgb(im)
        except photos.PhotoError as e:
            raise DataError("%s: unusable photo (%s)" % (path, e))
        aligned, faces = self.detector(rgb)
        if not faces:
            self.found[path] = {"faces": 0}
            return None
        self.found[path] = {"faces": len(faces), "kept": align.describe(faces[0]),
                            "why": align.kept_reason(len(faces))}
        return aligned

    def no_face(self):
        """The paths where no face was found, in load order."""
        return [p for p, f in self.found.items() if not f["faces"]]
