"""Block matching, the pixel bank and pseudo-instance sampling (SPEC sections 2, 3).

For every pixel p the candidates are the offsets d = (dy, dx) with dy, dx in
[-(ws//2), ws - ws//2 - 1]; the distance between p and p + d is the L1 or L2
distance of the ps x ps patches around them, over all channels, on the image
reflect-padded by ws//2 + ps//2. The bank keeps the `nn` nearest candidates of
every pixel, sorted ascending; entry 0 is p itself at distance 0.

Internally a bank is a set of offsets (nn x 2 x H x W): an entry is an offset, not
C pixel values. `gather_bank` turns offsets into pixel values when training needs
them, and the cache stores offsets and distances.
"""
from __future__ import annotations

import hashlib
import math
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from utils import UserError, atomic_write

# The unfold method materialises C*ps*ps*ws*ws floats per pixel (940 KB for RGB,
# ps 7, ws 40); tiles are sized so that those tensors stay under this many bytes.
UNFOLD_MEMORY_BUDGET = 1 << 30
# The shift method keeps every candidate's distance for a tile of pixels: ws*ws floats a
# pixel (6.4 KB for ws 40); tiles are sized so that this stays under this many bytes.
# Tiles of 64 MiB a thread measured fastest on a 2-core CPU (16 to 256 tried); a GPU wants
# big ones to fill its cores.
SHIFT_MEMORY_BUDGET = {"cpu": 64 << 20, "cuda": 1 << 30}
CACHE_VERSION = 1


def window_range(ws: int) -> tuple[int, int]:
    """Lowest and highest offset along one axis: -20..19 for ws 40, -20..20 for 41."""
    return -(ws // 2), ws - ws // 2 - 1


def check_image_size(height: int, width: int, ws: int, ps: int) -> None:
    """Reflect padding cannot pad by as much as the image side; refusing is clearer
    than silently switching to another padding that would change the bank."""
    pad = ws // 2 + ps // 2
    if pad >= min(height, width):
        raise UserError(f"{height} x {width} pixels is too small for --ws {ws} --ps {ps}: "
                        f"both sides must exceed ws//2 + ps//2 = {pad}; lower --ws/--ps")


def _tile_shape(height: int, width: int, bytes_per_pixel: int, budget: int) -> tuple[int, int]:
    pixels = max(1, budget // bytes_per_pixel)
    side = max(1, math.isqrt(pixels))
    tile_h = min(height, side)
    tile_w = min(width, max(1, pixels // tile_h))
    return tile_h, tile_w


def _store_tile(offsets: torch.Tensor, distances: torch.Tensor, best: torch.Tensor, index: torch.Tensor,
                ws: int, y0: int, x0: int, tile_h: int, tile_w: int) -> None:
    """Write one tile's nearest candidates (best, index: nn x tile_h*tile_w, index a
    raster position in the window) into the image-wide outputs as offsets."""
    low, _ = window_range(ws)
    entries = best.shape[0]
    distances[:, y0:y0 + tile_h, x0:x0 + tile_w] = best.reshape(entries, tile_h, tile_w)
    for axis, position in enumerate((index // ws, index % ws)):
        offsets[:, axis, y0:y0 + tile_h, x0:x0 + tile_w] = (position + low).reshape(entries, tile_h, tile_w)


def _match_unfold(noisy: torch.Tensor, ws: int, ps: int, nn: int, distance: str,
                  memory_budget: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's algorithm: materialise every candidate patch with F.unfold.
    Unlike the release (fixed 64 x 64 blocks, so only (H//64)*64 x (W//64)*64 pixels),
    tiles are sized from a memory budget and the last ones are cut to fit the image."""
    channels, height, width = noisy.shape
    pad = ws // 2 + ps // 2
    padded = F.pad(noisy[None], (pad, pad, pad, pad), mode="reflect")[0]  # C x H+2pad x W+2pad
    features = channels * ps * ps
    # win, and the difference computed from it in place: 2 tensors of features*ws*ws floats a pixel
    tile_h, tile_w = _tile_shape(height, width, 2 * features * ws * ws * 4, memory_budget)

    offsets = torch.empty((nn, 2, height, width), dtype=torch.int16, device=noisy.device)
    distances = torch.empty((nn, height, width), dtype=torch.float32, device=noisy.device)
    for y0 in range(0, height, tile_h):
        for x0 in range(0, width, tile_w):
            th, tw = min(tile_h, height - y0), min(tile_w, width - x0)
            # Patch grid: the patch with top-left (y0+i, x0+j) in padded coordinates is
            # candidate ky=i-ty, kx=j-tx of tile pixel (ty, tx); offset 0 is at ky = ws//2.
            region = padded[:, y0:y0 + th + ws + ps - 2, x0:x0 + tw + ws + ps - 2]
            grid = F.unfold(region[None], kernel_size=ps)  # 1 x features x (gh*gw)
            grid = grid.view(1, features, th + ws - 1, tw + ws - 1)
            windows = F.unfold(grid, kernel_size=ws)  # 1 x (features*ws*ws) x (th*tw)
            windows = windows.view(features, ws * ws, th * tw)
            centre = grid[0, :, ws // 2:ws // 2 + th, ws // 2:ws // 2 + tw].reshape(features, 1, th * tw)
            diff = windows.sub_(centre)  # windows is a fresh tensor: reuse its memory
            diff = diff.square_() if distance == "L2" else diff.abs_()
            dist = diff.sum(dim=0)  # ws*ws x th*tw
            del windows, diff
            best, index = torch.topk(dist, k=nn, dim=0, largest=False, sorted=True)
            _store_tile(offsets, distances, best, index, ws, y0, x0, th, tw)
    return offsets, distances


def _box_sum(planes: torch.Tensor, size: int) -> torch.Tensor:
    """Sum over every size x size box of the last two axes ('valid' positions only).
    Separable sums of shifted slices: exact in the order of the terms, unlike a
    running sum (cumsum), whose float32 error grows with the image width."""
    height, width = planes.shape[-2] - size + 1, planes.shape[-1] - size + 1
    rows = planes[..., 0:width].clone()
    for i in range(1, size):
        rows += planes[..., i:i + width]
    boxes = rows[..., 0:height, :].clone()
    for i in range(1, size):
        boxes += rows[..., i:i + height, :]
    return boxes


def _match_shift(noisy: torch.Tensor, ws: int, ps: int, nn: int, distance: str,
                 memory_budget: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-offset block matching: for every offset d, the difference of the image and
    its copy shifted by d, squared or absolute, summed over channels and box-filtered
    over the patch, is the patch distance of every pixel to its candidate p + d. No
    patch is materialised: about 50 times fewer operations than unfold. The offsets
    of one window row are done at once through a strided view of the padded image."""
    channels, height, width = noisy.shape
    half = ps // 2
    pad = ws // 2 + half
    low, _ = window_range(ws)
    padded = F.pad(noisy[None], (pad, pad, pad, pad), mode="reflect")[0].contiguous()  # C x Hp x Wp
    stride_c, stride_h, _ = padded.stride()
    tile_h, tile_w = _tile_shape(height, width, ws * ws * 4 * 2, memory_budget)
    offsets = torch.empty((nn, 2, height, width), dtype=torch.int16, device=noisy.device)
    distances = torch.empty((nn, height, width), dtype=torch.float32, device=noisy.device)

    def match_tile(y0: int, x0: int) -> None:
        th, tw = min(tile_h, height - y0), min(tile_w, width - x0)
        eh, ew = th + 2 * half, tw + 2 * half  # the tile grown by the patch radius
        # Padded coordinates of the grown tile's corner: pixel (y0, x0) sits at pad, pad.
        top, left = pad - half + y0, pad - half + x0
        centre = padded[:, top:top + eh, left:left + ew]  # C x eh x ew
        # Pixel-major (th*tw x ws*ws): top-k along the last, contiguous axis is about
        # 2.5 times faster than across planes.
        candidates = torch.empty((th * tw, ws * ws), dtype=torch.float32, device=noisy.device)
        for ky in range(ws):
            row_start = padded[:, top + low + ky:, left + low:]
            # ws x C x eh x ew view: entry kx is the grown tile shifted by (low+ky, low+kx)
            shifted = row_start.as_strided((ws, channels, eh, ew), (1, stride_c, stride_h, 1),
                                           row_start.storage_offset())
            # Channel by channel into one ws x eh x ew sum: no C-fold temporary, no reduction
            # across a strided axis.
            per_pixel = None
            for channel in range(channels):
                diff = shifted[:, channel] - centre[channel]
                diff = diff.square_() if distance == "L2" else diff.abs_()
                per_pixel = diff if per_pixel is None else per_pixel.add_(diff)
            candidates[:, ky * ws:(ky + 1) * ws] = _box_sum(per_pixel, ps).reshape(ws, th * tw).T
        best, index = torch.topk(candidates, k=nn, dim=1, largest=False, sorted=True)
        _store_tile(offsets, distances, best.T, index.T, ws, y0, x0, th, tw)

    tiles = [(y0, x0) for y0 in range(0, height, tile_h) for x0 in range(0, width, tile_w)]
    threads = torch.get_num_threads()
    if noisy.device.type != "cpu" or threads == 1 or len(tiles) == 1:
        for tile in tiles:
            match_tile(*tile)
        return offsets, distances
    # On a CPU, the per-tile tensors are too small for torch's intra-op threads to pay
    # (measured: 200 us to start a parallel region on a 2-core machine, 40x the work):
    # run whole tiles on parallel threads instead, each op on one thread. Tiles write
    # disjoint slices of the outputs.
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda tile: match_tile(*tile), tiles))
    finally:
        torch.set_num_threads(threads)
    return offsets, distances


def match_offsets(noisy: torch.Tensor, ws: int = 40, ps: int = 7, nn: int = 16, distance: str = "L2",
                  method: str = "shift", memory_budget: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Block matching. noisy: C x H x W float tensor on any device, whose sides exceed
    ws//2 + ps//2 (check_image_size); parameters as Pixel2PixelSettings accepts them.
    Returns offsets (nn x 2 x H x W int16, dy then dx) and distances (nn x H x W),
    ascending along the first axis."""
    noisy = noisy.float().contiguous()
    with torch.no_grad():
        if method == "unfold":
            return _match_unfold(noisy, ws, ps, nn, distance, memory_budget or UNFOLD_MEMORY_BUDGET)
        return _match_shift(noisy, ws, ps, nn, distance,
                            memory_budget or SHIFT_MEMORY_BUDGET.get(noisy.device.type, 1 << 30))


def gather_bank(noisy: torch.Tensor, offsets: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """Pixel values of the first `count` bank entries: count x C x H x W.
    All channels of an entry share its offset; offsets past the border read the
    reflect-padded image, as block matching did."""
    channels, height, width = noisy.shape
    offsets = offsets[:count] if count is not None else offsets
    entries = offsets.shape[0]
    reach = int(offsets.abs().max()) if offsets.numel() else 0
    padded = F.pad(noisy[None], (reach, reach, reach, reach), mode="reflect")[0] if reach else noisy
    padded_width = width + 2 * reach
    rows = torch.arange(height, device=noisy.device).view(1, height, 1) + reach + offsets[:, 0].long()
    cols = torch.arange(width, device=noisy.device).view(1, 1, width) + reach + offsets[:, 1].long()
    flat_index = (rows * padded_width + cols).view(-1)  # entries*H*W
    values = padded.reshape(channels, -1)[:, flat_index]  # C x entries*H*W
    return values.view(channels, entries, height, width).transpose(0, 1).contiguous()


# ----------------------------------------------------------------------------
# Pseudo instances
# ----------------------------------------------------------------------------
def sample_index_pair(entries: int, height: int, width: int, generator: torch.Generator,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two H x W index maps in [0, entries) that differ at every pixel: where the
    second draw equals the first it is moved to the next entry (mod entries), as
    released; that keeps one draw per map and so the release's random stream shape."""
    first = torch.randint(0, entries, (height, width), generator=generator, device=device)
    second = torch.randint(0, entries, (height, width), generator=generator, device=device)
    second = torch.where(second == first, (second + 1) % entries, second)
    return first, second


def sample_pseudo_instances(bank: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """bank: mm x C x H x W -> (input, target), each 1 x C x H x W, with one index per
    pixel shared by all channels."""
    entries, channels, height, width = bank.shape
    first, second = sample_index_pair(entries, height, width, generator, bank.device)
    # H x W -> 1 x C x H x W: the same entry for every channel of a pixel
    pick_first = first.view(1, 1, height, width).expand(1, channels, height, width)
    pick_second = second.view(1, 1, height, width).expand(1, channels, height, width)
    return bank.gather(0, pick_first), bank.gather(0, pick_second)


class OffsetBank:
    """The first mm entries of a pixel bank kept as offsets into the noisy image, for
    photos too large to hold as mm x C x H x W floats: an entry costs 2 bytes a pixel
    (int8 dy, dx; int16 for windows above 255), not 4 C. sample() reads one pseudo-instance pair of a random
    crop x crop window; with the crop the whole image, it draws no window and gives
    exactly what sample_pseudo_instances gives on gather_bank's bank."""

    def __init__(self, noisy: torch.Tensor, offsets: torch.Tensor, crop: int | None = None):
        channels, height, width = noisy.shape  # noisy: C x H x W; offsets: mm x 2 x H x W
        self.reach = int(offsets.abs().max()) if offsets.numel() else 0
        # int8 holds the offsets of any window up to ws 255 (-127..127)
        self.offsets = offsets.to(torch.int8 if self.reach <= 127 else torch.int16)
        self.padded = F.pad(noisy[None], (self.reach,) * 4, mode="reflect")[0] if self.reach else noisy
        self.crop_h, self.crop_w = (height, width) if crop is None else (min(crop, height), min(crop, width))
        self.height, self.width, self.channels = height, width, channels

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Of one sample's bank: mm x C x crop_h x crop_w."""
        return (self.offsets.shape[0], self.channels, self.crop_h, self.crop_w)

    @property
    def device(self) -> torch.device:
        return self.padded.device

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target), each 1 x C x crop_h x crop_w."""
        entries, _, ch, cw = self.shape
        device = self.device
        top = left = 0
        if (ch, cw) != (self.height, self.width):
            corner = torch.randint(0, (self.height - ch + 1) * (self.width - cw + 1), (1,), generator=generator,
                                   device=device).item()
            top, left = divmod(corner, self.width - cw + 1)
        first, second = sample_index_pair(entries, ch, cw, generator, device)
        window = self.offsets[:, :, top:top + ch, left:left + cw].long()  # mm x 2 x ch x cw
        rows = torch.arange(top, top + ch, device=device).view(ch, 1) + self.reach
        cols = torch.arange(left, left + cw, device=device).view(1, cw) + self.reach
        flat = self.padded.reshape(self.channels, -1)  # C x (H+2r)*(W+2r)
        padded_width = self.width + 2 * self.reach
        pair = []
        for index in (first, second):
            # ch x cw: the chosen entry's offset at every pixel
            dy = window[:, 0].gather(0, index[None])[0]
            dx = window[:, 1].gather(0, index[None])[0]
            position = ((rows + dy) * padded_width + cols + dx).view(-1)
            pair.append(flat[:, position].view(1, self.channels, ch, cw))
        return pair[0], pair[1]


# ----------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------
def bank_key(noisy: torch.Tensor, ws: int, ps: int, nn: int, distance: str, method: str) -> str:
    """Everything that determines a bank: the noisy pixels themselves and the
    matching parameters (the method too: near-ties may resolve differently)."""
    digest = hashlib.sha256()
    array = noisy.detach().float().cpu().contiguous().numpy()
    digest.update(repr((array.shape, ws, ps, nn, distance, method, CACHE_VERSION)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:20]


def load_cached_bank(path: str, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached (offsets, distances), or None when absent, unreadable or not this key."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            offsets, distances = stored["offsets"], stored["distances"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if offsets.ndim != 4 or offsets.shape[1] != 2 or distances.shape != (offsets.shape[0],) + offsets.shape[2:]:
        return None
    return torch.from_numpy(offsets), torch.from_numpy(distances)


def save_cached_bank(path: str, key: str, offsets: torch.Tensor, distances: torch.Tensor) -> None:
    """Atomic: a killed run leaves either no cache file or a complete one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, lambda tmp: np.savez(tmp, key=np.array(key), offsets=offsets.cpu().numpy(),
                                            distances=distances.cpu().numpy()))
