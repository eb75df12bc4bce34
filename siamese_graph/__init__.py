"""siamese-graph: face verification with a siamese network in TensorFlow's graph style.

    import siamese_graph as sg
    sg.verify("a.jpg", "b.jpg")     # "same", "different" or "no_face", with the packaged model

The public API (docs/python.md) is siamese_graph.api's, loaded on first use so that
importing a submodule stays light: load_model, find_faces, align_faces, embed_photos,
distance, verify, enroll, identify, Gallery.
"""
PUBLIC = ("load_model", "find_faces", "align_faces", "embed_photos", "distance", "verify", "enroll", "identify", "Gallery")


def __getattr__(name):
    if name in PUBLIC:
        from siamese_graph import api

        return getattr(api, name)
    raise AttributeError("module 'siamese_graph' has no attribute %r" % name)


def __dir__():
    return sorted(list(globals()) + list(PUBLIC))
