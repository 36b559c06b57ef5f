"""Workloads: the catalogue of standard open-source models and how each family is built and fed.

Importing this package is cheap: `models.catalogue` is data; `models.families.*` import torch/transformers
and are loaded only when a workload is prepared.
"""

from models.catalogue import WORKLOADS, get_workload, workload_names

__all__ = ["WORKLOADS", "get_workload", "workload_names"]
