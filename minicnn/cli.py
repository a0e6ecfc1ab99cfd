"""The ``minicnn`` command (also ``python -m minicnn``).

    minicnn gradcheck                 check every built-in op's gradient, print a table
    minicnn bench [--only SECTION]    time minicnn beside PyTorch CPU (when installed)
    minicnn train NAME                train a shipped model by its recipe (fashion_net, cifar_net,
                                      segnet, segnet_transposed, unet)
    minicnn assignment make OUT --parts conv2d,saliency | check OUT   homework folders
    minicnn weights list|fetch|import manage pretrained weights
    minicnn demo [--quick] [--only a,b]  every technique on the offline defaults -> ./minicnn-gallery
"""
import argparse
import os
import sys

__all__ = ["main"]


def _cmd_gradcheck(args):
    from .opcheck import run_all, format_table
    rows = run_all(seed=args.seed, names=args.only.split(",") if args.only else None)
    print(format_table(rows))
    return 0 if all(r[3] for r in rows) else 1


def _cmd_bench(args):
    from . import bench
    bench.run(sections=args.only.split(",") if args.only else None)
    return 0


def _recorded_command(args):
    """The command line as the manifest records it: options naming files or folders keep
    only the last part of the path (a manifest travels; the machine's folders do not)."""
    words = ["minicnn", "train", args.name]
    if args.epochs is not None:
        words += ["--epochs", str(args.epochs)]
    if args.seed:
        words += ["--seed", str(args.seed)]
    if getattr(args, "scratch", False):
        words.append("--scratch")
    if getattr(args, "lr", None) is not None:
        words += ["--lr", f"{args.lr:g}"]
    if getattr(args, "init", None):
        words += ["--init", os.path.basename(os.path.normpath(args.init))]
    if getattr(args, "resume", False):
        words.append("--resume")
    if args.data:
        words += ["--data", os.path.basename(os.path.normpath(args.data))]
    return " ".join(words)


def _cmd_train(args):
    from .seg_training import SEG_RECIPES, train_segmentation_recipe
    from .training import RECIPES, train_recipe
    if args.name in SEG_RECIPES:
        if args.lr is not None or args.init:
            print(f"minicnn train: --lr and --init are for {', '.join(RECIPES)}, "
                  f"not {args.name}", file=sys.stderr)
            return 2
        path, history = train_segmentation_recipe(
            args.name, out_dir=args.out, data_root=args.data, epochs=args.epochs,
            seed=args.seed, resume=args.resume, pretrained_encoder=not args.scratch,
            out_name=f"{args.name}_scratch" if args.scratch else None,
            command=_recorded_command(args))
        last = history[-1]
        print(f"saved {path}: test mean IoU {last['test_mean_iou']:.4f}, "
              f"pixel accuracy {last['test_pixel_acc']:.4f}")
        return 0
    if args.scratch:
        print(f"minicnn train: --scratch is for the segmentation models "
              f"({', '.join(SEG_RECIPES)}), not {args.name}", file=sys.stderr)
        return 2
    if args.name not in RECIPES:
        print(f"minicnn train: no recipe for {args.name!r}; known: "
              f"{', '.join(list(RECIPES) + list(SEG_RECIPES))}", file=sys.stderr)
        return 2
    path, history = train_recipe(args.name, out_dir=args.out, data_root=args.data,
                                 epochs=args.epochs, seed=args.seed, resume=args.resume,
                                 lr=args.lr, init=args.init, command=_recorded_command(args))
    print(f"saved {path}: test accuracy {history[-1]['test_acc']:.4f}")
    return 0


def _cmd_assignment(args):
    from . import assignment
    if args.action == "make":
        out = assignment.make(args.out, args.parts, force=args.force, solution=args.solution)
        print(f"wrote the assignment {out}: students start with {out / 'README.md'}")
    else:
        print(assignment.format_table(assignment.check(args.out)))
    return 0


def _cmd_weights(args):
    from .models import registry
    if args.action == "list":
        print(registry.describe())
    elif args.action == "fetch":
        print(registry.fetch(args.name))
    elif args.action == "import":
        if not args.arch:
            raise SystemExit("minicnn weights import FILE --arch NAME: --arch is required")
        print(registry.import_weights(args.name, args.arch, out=args.out))
    return 0


def _cmd_demo(args):
    from .gallery import build_gallery
    only = args.only.split(",") if args.only is not None else None
    result = build_gallery(args.out, only=only, model=args.model, images=args.image or (),
                           quick=args.quick, backend=args.backend, seed=args.seed)
    index = result.out / "index.html"
    print(f"wrote {len(result.figures())} figures and {index} in {result.seconds:.0f} s")
    for name, reason in result.failed():
        print(f"minicnn demo: {name} failed: {reason}", file=sys.stderr)
    for err in result.input_errors:
        print(f"minicnn demo: error: unreadable --image {err}", file=sys.stderr)
    return 1 if result.input_errors or result.failed() else 0


def build_parser():
    p = argparse.ArgumentParser(prog="minicnn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gradcheck", help="gradient-check every built-in op")
    g.add_argument("--only", help="comma-separated op names")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(fn=_cmd_gradcheck)

    b = sub.add_parser("bench", help="benchmark beside PyTorch CPU")
    b.add_argument("--only", help="comma-separated section names")
    b.set_defaults(fn=_cmd_bench)

    t = sub.add_parser("train", help="train a shipped model by its recipe")
    t.add_argument("name", help="fashion_net, cifar_net, or a segmentation model: segnet, "
                                "segnet_transposed, unet")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", help="dataset file or folder (default: standard locations)")
    t.add_argument("--out", default="weights", help="folder for <name>.npz + .json")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    t.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    t.add_argument("--init", metavar="FILE",
                   help="start from these weights (.npz + manifest): a new cosine cycle "
                        "from trained weights (fashion_net, cifar_net)")
    t.add_argument("--scratch", action="store_true",
                   help="segmentation models: random encoder instead of fashion_net's convs "
                        "(saved as <name>_scratch.npz, for the comparison)")
    t.set_defaults(fn=_cmd_train)

    from .assignment import PARTS
    hw = sub.add_parser("assignment", help="homework: write a folder of bodies to fill in, score it")
    hw_sub = hw.add_subparsers(dest="action", required=True)
    hm = hw_sub.add_parser("make", help="write a homework folder (package, tests, README)")
    hm.add_argument("out", help="the folder to write (must be new or empty)")
    hm.add_argument("--parts", required=True, help="comma-separated, or 'all': " + ", ".join(PARTS))
    hm.add_argument("--force", action="store_true", help="replace the generated files in OUT")
    hm.add_argument("--solution", action="store_true", help="keep the bodies (the answer key)")
    hw_sub.add_parser("check", help="run each part's tests, print passed/total").add_argument(
        "out", help="an assignment folder")
    hw.set_defaults(fn=_cmd_assignment)

    w = sub.add_parser("weights", help="list / fetch / import pretrained weights")
    w.add_argument("action", choices=["list", "fetch", "import"])
    w.add_argument("name", nargs="?", help="model name (fetch) or checkpoint file (import)")
    w.add_argument("--arch", help="architecture of an imported file")
    w.add_argument("--out", help="where to write the imported .npz (default: the cache)")
    w.set_defaults(fn=_cmd_weights)

    d = sub.add_parser("demo", help="run every technique and write an HTML gallery")
    d.add_argument("--out", default="minicnn-gallery", help="output folder (default ./minicnn-gallery)")
    d.add_argument("--only", help="comma-separated sections, e.g. saliency,grad_cam")
    d.add_argument("--model", help="run on this model only (default: fashion_net + an ImageNet "
                                   "model when available offline)")
    d.add_argument("--image", action="append", metavar="PATH", help="a photo to use (repeatable)")
    d.add_argument("--quick", action="store_true", help="small sizes and few iterations")
    d.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=_cmd_demo)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, OSError, RuntimeError, KeyError) as e:   # OSError: files, downloads
        print(f"minicnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
