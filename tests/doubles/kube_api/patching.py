"""Patch semantics: JSON patch, merge patch, strategic merge, and server-side apply.

Strategic merge and apply merge lists by key for the list fields our objects use,
as the API server does from its patchMergeKey tags:
https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
"""

from __future__ import annotations

import copy

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
    "imagePullSecrets": "name",
    "ports": None,
}  # ports: containerPort or port


class PatchError(Exception):
    pass


def json_patch(doc: dict, ops: list) -> dict:
    """RFC 6902 (add, remove, replace, test)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")
        ]
        target = doc
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        kind = op["op"]
        try:
            if kind == "test":
                current = target[int(last)] if isinstance(target, list) else target[last]
                if current != op["value"]:
                    raise PatchError(f"test failed at {op['path']}")
            elif kind == "remove":
                del target[int(last) if isinstance(target, list) else last]
            elif kind in ("add", "replace"):
                if isinstance(target, list):
                    if last == "-":
                        target.append(op["value"])
                    elif kind == "add":
                        target.insert(int(last), op["value"])
                    else:
                        target[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in target:
                        raise PatchError(f"replace of missing path {op['path']}")
                    target[last] = op["value"]
            else:
                raise PatchError(f"unsupported op {kind}")
        except (KeyError, IndexError, ValueError) as e:
            raise PatchError(f"bad path {op['path']}: {e}") from e
    return doc


def merge_patch(base, patch, *, strategic: bool = False):
    """RFC 7386 merge patch; with strategic=True, keyed lists merge item by item."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(base, dict) or (strategic and patch.get("$patch") == "replace"):
        base = {}
    out = dict(base)
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif strategic and k in MERGE_KEYS and isinstance(v, list):
            out[k] = _merge_list(out.get(k) or [], v)
        else:
            out[k] = merge_patch(out.get(k), v, strategic=strategic)
    return out


def _key_of(items: list) -> str:
    for item in items:
        for key in ("name", "mountPath", "type", "containerPort", "port"):
            if isinstance(item, dict) and key in item:
                return key
    return "name"


def _merge_list(base: list, patch: list) -> list:
    key = _key_of(patch + base)
    out = [copy.deepcopy(i) for i in base]
    for item in patch:
        idx = next((n for n, cur in enumerate(out) if cur.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(merge_patch({}, item, strategic=True))
        else:
            out[idx] = merge_patch(out[idx], item, strategic=True)
    return out


# --- server-side apply -------------------------------------------------------------
# Ownership is tracked per field path (keyed list items get "[key=value]" segments).
# https://kubernetes.io/docs/reference/using-api/server-side-apply/


def field_paths(obj, prefix=()) -> dict[tuple, object]:
    """Leaf paths of the fields an apply or update sets, with their values."""
    out: dict[tuple, object] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if prefix == () and k in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("metadata",) and k not in ("labels", "annotations"):
                continue
            out.update(
                field_paths(v, (*prefix, k))
                if isinstance(v, dict | list) and v
                else {(*prefix, k): v}
            )
    elif isinstance(obj, list) and prefix and prefix[-1] in MERGE_KEYS:
        key = _key_of(obj)
        for item in obj:
            out.update(field_paths(item, (*prefix, f"[{key}={item.get(key)}]")))
    else:
        out[prefix] = obj
    return out


def remove_path(obj, path: tuple) -> None:
    """Remove one owned field; empty parents are left as the server would."""
    *parents, last = path
    target = obj
    for seg in parents:
        target = _step(target, seg)
        if target is None:
            return
    if isinstance(target, dict):
        target.pop(last, None)
    elif isinstance(target, list) and last.startswith("["):
        k, v = last[1:-1].split("=", 1)
        target[:] = [i for i in target if str(i.get(k)) != v]


def _step(target, seg):
    if isinstance(target, dict):
        return target.get(seg)
    if isinstance(target, list) and seg.startswith("["):
        k, v = seg[1:-1].split("=", 1)
        return next((i for i in target if str(i.get(k)) == v), None)
    return None
