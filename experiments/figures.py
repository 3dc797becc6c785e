"""Figures of the paper's experiments (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import pandas as pd

POLICY_STYLE = {
    "oracle": ("black", "-", 2.2),
    "greedy": ("tab:blue", "--", 1.4),
    "local": ("tab:gray", ":", 1.4),
    "nearest": ("tab:brown", ":", 1.2),
    "cheapest": ("tab:orange", "-.", 1.2),
    "greenest": ("tab:green", "-.", 1.2),
    "random": ("tab:pink", ":", 1.0),
}


def _lines(ax: plt.Axes, df: pd.DataFrame, y: str, label: str, policies: list[str] | None = None) -> None:
    mean = df.groupby(["policy", "setting"])[y].mean().reset_index()
    for policy in policies or list(dict.fromkeys(df["policy"])):
        d = mean[mean["policy"] == policy].sort_values("setting")
        color, style, width = POLICY_STYLE.get(policy, ("tab:purple", "-", 1.0))
        ax.plot(d["setting"], d[y], style, color=color, lw=width, marker="o", ms=3, label=policy)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)


def plot(name: str, df: pd.DataFrame, out: Path) -> list[Path]:
    """Write the experiment's figure(s) into ``out``; returns their paths."""
    if df.empty:
        return []
    path = out / f"{name}.png"
    if name == "frontier":
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        _lines(axes[0], df, "total_usd", "objective J (USD)")
        _lines(axes[1], df, "carbon_g", "carbon (g CO2)")
        _lines(axes[2], df, "rid", "RID (share of energy relocated)")
        for ax in axes:
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlabel("latency slack added to every budget (ms)")
        axes[0].legend(fontsize=8)
        fig.suptitle("Energy-latency frontier (mean over seeds)")
    elif name in ("frictions", "capacity"):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        xlabel = (
            "friction multiplier (state, cache, egress, replica)"
            if name == "frictions"
            else "capacity scale of the cheap, clean regions"
        )
        _lines(axes[0], df, "savings_usd", "savings vs local (USD)")
        _lines(axes[1], df, "rid", "RID")
        _lines(axes[2], df, "break_even_share", "break-even share of relocations")
        for ax in axes:
            ax.set_xlabel(xlabel)
            ax.set_xscale("symlog", linthresh=0.5 if name == "frictions" else 0.25)  # 0 stays on the axis
        axes[0].legend(fontsize=8)
        fig.suptitle("Migration frictions" if name == "frictions" else "Capacity in the cheap, clean regions")
    elif name == "legal":
        mean = df.groupby(["setting", "policy"], sort=False)[["feasible_regions", "savings_usd", "rid"]].mean()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, col, label in zip(
            axes,
            ["feasible_regions", "savings_usd", "rid"],
            ["admissible regions per task", "savings vs local (USD)", "RID"],
            strict=True,
        ):
            mean[col].unstack("policy").plot.bar(ax=ax, legend=False, rot=0)
            ax.set_ylabel(label)
            ax.set_xlabel("residency rules")
            ax.grid(alpha=0.3, axis="y")
        axes[1].legend(fontsize=8)
        fig.suptitle("Data-residency rules")
    elif name == "layers":
        cols = ["local_energy_share", "regional_energy_share", "energy_energy_share"]
        policies = [p for p in ("oracle", "greedy") if p in set(df["policy"])] or [df["policy"].iloc[0]]
        fig, axes = plt.subplots(1, len(policies), figsize=(6 * len(policies), 3.8), squeeze=False)
        for ax, policy in zip(axes[0], policies, strict=True):
            d = df[df["policy"] == policy]
            if "level" in d.columns:  # several slack levels: show the scenario's own budgets (the lowest)
                d = d[d["level"] == d["level"].min()]
            d = d.groupby("setting", sort=False)[cols].mean()
            d.columns = ["local", "regional", "energy-oriented"]
            d.plot.barh(stacked=True, ax=ax, color=["tab:gray", "tab:blue", "tab:green"], legend=False)
            ax.set_xlabel("share of the class's inference energy")
            ax.set_ylabel("")
            ax.set_title(policy)
            ax.invert_yaxis()
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False)
        fig.suptitle("Execution layers by workload class")
        fig.tight_layout(rect=(0, 0.06, 1, 1))  # room for the legend below the panels
    else:
        raise ValueError(f"no figure for experiment {name!r}")
    if name != "layers":  # layers laid out its own legend row
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
