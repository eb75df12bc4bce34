"""Source readers: walk a dataset layout on disk, list its photos.

Each reader returns a `Listing`: photos as (path, relative name, identity name,
split), identity names in their canonical order (which fixes the contiguous
identity index), and counts of what was listed but not found.
"""
import collections

Photo = collections.namedtuple("Photo", ["path", "relname", "identity_name", "split"])

Listing = collections.namedtuple("Listing", ["photos", "identity_names", "missing", "source"])
