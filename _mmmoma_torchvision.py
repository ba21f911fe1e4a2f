"""Let torchvision import beside a torch its compiled ops were not built for.

PyPI's torchvision is a CUDA build; beside the pinned CPU torch its compiled
ops (``torchvision/_C.so``) do not load, and its import then dies with
``RuntimeError: operator torchvision::nms does not exist`` when it registers
fake kernels for them. Defining the op schemas first lets the pure-Python
parts (transforms, models) import; a compiled op raises when called.

Two users, one definition: ``mmmoma.compat`` (on ``import mmmoma``) and the
``mmmoma-torchvision.pth`` that ``tools/install.sh`` writes into the venv it
makes, so that ``import torchvision`` (or ``timm``) works there whatever is
imported first. The ``.pth`` only installs :class:`TorchvisionFinder`: torch
is imported when torchvision is, not at interpreter start. A top-level
module, so that the ``.pth`` does not import the mmmoma package.
"""
import glob
import importlib.util
import os
import sys
from typing import Optional

SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor',
)
_library = None  # keep the Library alive: dropping it drops the schemas


def define_schemas() -> bool:
    """Define torchvision's op schemas in torch, once.

    Returns:
        bool: Whether this call defined them.
    """
    global _library
    if _library is not None:
        return False
    import torch
    _library = torch.library.Library('torchvision', 'DEF')
    for schema in SCHEMAS:
        _library.define(schema)
    return True


def compiled_ops_load() -> bool:
    """Whether torchvision's compiled ops load into this torch.

    Loading them here is what torchvision's own import does next; loading a
    library twice is a no-op.
    """
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return True  # nothing to fix
    import torch
    folder = list(spec.submodule_search_locations)[0]
    for lib in glob.glob(os.path.join(folder, '_C*.so')) + glob.glob(
            os.path.join(folder, '_C*.pyd')):
        try:
            torch.ops.load_library(lib)
            return True
        except OSError:
            return False
    return False


class TorchvisionFinder:
    """A ``sys.meta_path`` entry that acts once, on ``import torchvision``:
    it removes itself and defines the schemas if the compiled ops do not
    load; the import then proceeds as usual."""

    def find_spec(self, name: str, path=None, target=None) -> None:
        if name == 'torchvision':
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            if not compiled_ops_load():
                define_schemas()
        return None


def install() -> Optional[TorchvisionFinder]:
    """Put a :class:`TorchvisionFinder` first on ``sys.meta_path``.

    Returns:
        TorchvisionFinder | None: The finder, or None when torchvision is
        already imported or a finder is in place.
    """
    if 'torchvision' in sys.modules or any(
            isinstance(f, TorchvisionFinder) for f in sys.meta_path):
        return None
    finder = TorchvisionFinder()
    sys.meta_path.insert(0, finder)
    return finder
