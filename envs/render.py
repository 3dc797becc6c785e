"""The env's picture: a world map of where inference runs, as an ``H x W x 3`` uint8 frame.

Compute regions sit at their real locations (:mod:`envs.geo`), coloured by the current hour's electricity
price or carbon intensity (one colour scale per episode, so frames compare), each with a gauge of the
capacity its current slot has used. Service nodes are white squares; lines join each node to the regions
that serve its tasks of the current hour, as wide as the energy they carry. A side panel holds the running
cost terms and the action just taken.

Nothing here is imported or drawn unless a render mode is asked for. The static layer (land, nodes, colour
bar) is drawn once per episode and kept; a frame restores it and draws only what moves (Agg blitting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from envs.costs import cost_matrix
from envs.geo import land_rings, region_coordinates
from envs.instance import Instance

if TYPE_CHECKING:
    from envs.scenario import Scenario

ColorBy = Literal["price", "carbon"]
COLOR_BY: tuple[ColorBy, ...] = ("price", "carbon")
FRAME_SIZE = (960, 540)  # pixels, width x height
_DPI = 100
_GAUGE_DEG = (3.0, 12.0)  # gauge width and full height, degrees
_TERMS = ("energy_usd", "carbon_g", "delay_usd", "migration_usd", "replica_usd", "penalty_usd")


class MapRenderer:
    """Draws frames of one env's episodes; :meth:`start` at reset, :meth:`record` at every step, :meth:`frame`."""

    def __init__(self, scenario: Scenario, color_by: ColorBy = "price") -> None:
        if color_by not in COLOR_BY:
            raise ValueError(f"color_by = {color_by!r}: expected one of {COLOR_BY}")
        self.color_by: ColorBy = color_by
        coords = region_coordinates()
        self._region_xy = np.array([coords[n][::-1] for n in scenario.region_names])  # [R] (lon, lat)
        nodes = scenario.spec.get("service_nodes", {})
        node_xy = []
        for n, home in zip(scenario.node_names, scenario.node_home_idx, strict=True):
            location = nodes.get(n, {}).get("location")  # a region's name: where the node's users are
            lon, lat = coords[location][::-1] if location else self._region_xy[home]
            node_xy.append((lon - 1.5, lat - 1.5))  # a little off the region's own marker
        self._node_xy = np.array(node_xy)
        self._fig: Any = None
        self.inst: Instance | None = None

    # ------------------------------------------------------------------------------------------ episode
    def start(self, inst: Instance) -> None:
        """A new episode: its pair costs (energy per pair), the colour scale, and a clean slate."""
        self.inst = inst
        pc = cost_matrix(inst)
        self._kwh = pc.facility_kwh  # energy drawn per (task, action), PUE included, kWh
        self._gpu = pc.gpu_s
        signal = inst.price_usd_per_kwh if self.color_by == "price" else inst.carbon_g_per_kwh
        self._signal = signal
        self._vmin, self._vmax = float(signal.min()), float(max(signal.max(), signal.min() + 1e-9))
        self._actions = np.full(inst.num_tasks, -1, dtype=np.int64)
        self._totals = dict.fromkeys(_TERMS, 0.0)
        self._total_usd = 0.0
        self._num_overflow = 0
        self._last: tuple[int, int, float] | None = None
        self._build()

    def record(self, task: int, action: int, info: dict[str, Any]) -> None:
        """Take a step's placement and its cost terms (the env's ``info``)."""
        self._actions[task] = action
        for term in ("energy_usd", "carbon_g", "delay_usd", "migration_usd", "penalty_usd"):
            self._totals[term] += float(info[term])
        self._totals["replica_usd"] += float(info["replica_charge_usd"])
        self._total_usd += float(info["cost_usd"])
        self._num_overflow += int(self.inst is not None and action == self.inst.num_regions)
        self._last = (task, action, float(info["cost_usd"]))

    # ------------------------------------------------------------------------------------------ drawing
    def _build(self) -> None:
        """The figure and its static layer (once per renderer), and the episode's colour scale."""
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection, PolyCollection
        from matplotlib.figure import Figure

        assert self.inst is not None
        if self._fig is None:
            fig = Figure(figsize=(FRAME_SIZE[0] / _DPI, FRAME_SIZE[1] / _DPI), dpi=_DPI, facecolor="#0e1a2b")
            self._canvas = FigureCanvasAgg(fig)
            ax = fig.add_axes((0.0, 0.0, 0.74, 1.0))
            ax.set_facecolor("#16324f")
            ax.add_collection(PolyCollection(land_rings(), facecolors="#3b4a5a", edgecolors="#56687a", linewidths=0.3))
            ax.set_xlim(-180, 180)
            ax.set_ylim(-60, 80)
            ax.set_aspect("equal", adjustable="box")
            ax.set_axis_off()
            self._flows = LineCollection([], colors="#ffd166", alpha=0.8, animated=True, capstyle="round")
            ax.add_collection(self._flows)
            self._regions = ax.scatter(
                self._region_xy[:, 0],
                self._region_xy[:, 1],
                s=70,
                c=np.zeros(len(self._region_xy)),
                cmap="plasma",
                edgecolors="white",
                linewidths=0.8,
                zorder=3,
                animated=True,
            )
            w, h = _GAUGE_DEG
            x, y = self._region_xy[:, 0] + 2.0, self._region_xy[:, 1] - h / 2
            self._gauge_frames = ax.bar(
                x, h, width=w, bottom=y, align="edge", fill=False, edgecolor="#cfd8e3", linewidth=0.5, zorder=4
            )
            self._gauges = ax.bar(x, 0.0, width=w, bottom=y, align="edge", color="#7bd389", zorder=4, animated=True)
            ax.scatter(
                self._node_xy[:, 0],
                self._node_xy[:, 1],
                s=28,
                marker="s",
                c="white",
                edgecolors="black",
                linewidths=0.6,
                zorder=5,
            )
            # the side panel's text is drawn with Pillow on the frame: matplotlib's glyph rendering took 90 ms
            from matplotlib import font_manager
            from PIL import ImageFont

            mono = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans Mono"))
            self._font = ImageFont.truetype(mono, 12)
            cax = fig.add_axes((0.03, 0.1, 0.22, 0.025))
            self._cbar = fig.colorbar(mpl.cm.ScalarMappable(cmap="plasma"), cax=cax, orientation="horizontal")
            cax.tick_params(colors="#e8eef5", labelsize=7)
            self._ax, self._fig = ax, fig
        self._regions.set_clim(self._vmin, self._vmax)
        self._cbar.mappable.set_clim(self._vmin, self._vmax)
        label = "electricity price, USD/kWh" if self.color_by == "price" else "grid carbon, g/kWh"
        self._cbar.set_label(f"{label} (this hour)", color="#e8eef5", fontsize=7)
        self._canvas.draw()
        self._background = self._canvas.copy_from_bbox(self._fig.bbox)

    def frame(self, task: int) -> NDArray[np.uint8]:
        """The picture before task ``task`` is placed (``task == K``: the end of the episode)."""
        assert self.inst is not None, "start() an episode first"
        inst = self.inst
        s = int(inst.slot_idx[min(task, inst.num_tasks - 1)])
        R = inst.num_regions
        # this hour's placements so far: the flows and the capacity used
        in_slot = np.flatnonzero((inst.slot_idx[:task] == s) & (self._actions[:task] >= 0))
        a = self._actions[in_slot]
        served = in_slot[a < R]
        region = self._actions[served]
        used = np.bincount(region, weights=self._gpu[served, region], minlength=R)
        share = np.clip(used / np.maximum(inst.capacity_gpu_s[s], 1e-9), 0.0, 1.0)
        key = inst.node_idx[served] * R + region
        pairs, inv = np.unique(key, return_inverse=True)
        kwh = np.bincount(inv, weights=self._kwh[served, region], minlength=pairs.size)
        segments = [(self._node_xy[p // R], self._region_xy[p % R]) for p in pairs]
        self._flows.set_segments(segments)
        self._flows.set_linewidth((0.6 + 5.0 * kwh / max(float(kwh.max(initial=0.0)), 1e-12)).tolist())
        self._regions.set_array(self._signal[s])
        for bar, f in zip(self._gauges, share, strict=True):
            bar.set_height(f * _GAUGE_DEG[1])
            bar.set_color("#ef476f" if f > 0.95 else "#7bd389")
        self._canvas.restore_region(self._background)
        for artist in (self._flows, self._regions, *self._gauges):
            self._fig.draw_artist(artist)
        from PIL import Image, ImageDraw

        image = Image.fromarray(np.asarray(self._canvas.buffer_rgba())[:, :, :3])
        ImageDraw.Draw(image).multiline_text(
            (int(0.755 * FRAME_SIZE[0]), 14), self._panel(task, s), font=self._font, fill="#e8eef5", spacing=5
        )
        return np.asarray(image)

    def _panel(self, task: int, s: int) -> str:
        inst = self.inst
        assert inst is not None
        t = self._totals
        hour = (inst.start_hour + s) % 24
        lines = [
            f"{getattr(inst, 'scenario_name', '') or 'episode'}",
            f"day {(inst.start_hour + s) // 24 + 1} of the year, {hour:02d}:00 UTC",
            f"task {min(task, inst.num_tasks)} / {inst.num_tasks}",
            "",
            "running cost (USD)",
            f"  energy    {t['energy_usd']:10.3f}",
            f"  carbon    {t['carbon_g'] / 1000:10.1f} kg",
            f"  delay     {t['delay_usd']:10.3f}",
            f"  migration {t['migration_usd']:10.3f}",
            f"  replicas  {t['replica_usd']:10.3f}",
            f"  overflow  {t['penalty_usd']:10.3f} ({self._num_overflow})",
            f"  total     {self._total_usd:10.3f}",
            "",
        ]
        if self._last is not None:
            k, a, cost = self._last
            where = "overflow" if a == inst.num_regions else inst.region_names[a]
            lines += [
                "last action",
                f"  task {k}: {inst.class_names[inst.class_idx[k]]}",
                f"  from {inst.node_names[inst.node_idx[k]]}",
                f"  -> {where}",
                f"  {cost:.4f} USD",
            ]
        lines += ["", "gauges: capacity used", "this hour (red: full)", "lines: this hour's flows,", "width by energy"]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- human
def has_display() -> bool:
    """Whether matplotlib has an interactive backend (a display) for ``render_mode="human"``."""
    import matplotlib
    from matplotlib.backends import BackendFilter, backend_registry

    return matplotlib.get_backend().lower() in backend_registry.list_builtin(BackendFilter.INTERACTIVE)


def show(frame: NDArray[np.uint8], window: Any, fps: float) -> Any:
    """Show ``frame`` in a matplotlib window (made on first use); returns the window's image artist."""
    import matplotlib.pyplot as plt

    if window is None:
        plt.ion()
        fig = plt.figure(figsize=(FRAME_SIZE[0] / _DPI, FRAME_SIZE[1] / _DPI), dpi=_DPI)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        window = ax.imshow(frame)
    else:
        window.set_data(frame)
    plt.pause(1.0 / fps)
    return window


def close_window(window: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(window.figure)
