#!/usr/bin/env python3
"""Proves android/embedded-server/consumer-rules.pro complete: every name the native side needs
survives R8/ProGuard in an app that shrinks.

What must be kept, read from the real artifacts:
- every `native` method of the compiled Kotlin classes (`javap -p -s` over the class files), and
  the class that declares it (the JNI export `Java_<class>_<method>` names both);
- every method the Rust JNI code calls by name (`call_method(obj, "name", "(sig)ret", ...)` in
  embedded-server/src/jni/): kept on the interface that declares it (found with javap) and on
  every class implementing it (`-keep class * implements I { ... }`), since the app's own
  implementation is what the call reaches;
- every class the Rust code names as a string (`"io/embeddedserver/X"`: `throw_new`,
  `find_class`, `new_object`), with the constructor named by the descriptor string that follows
  it on the same line (`"io/embeddedserver/X", "(Ljava/lang/String;IZ)V"`, or a constant such as
  `MESSAGE_ONLY` defined in the same file), else the `(String)` constructor `throw_new` uses;
- every WorkManager worker of the library (a class extending `androidx.work.*Worker`, found with
  javap), with the `(Context, WorkerParameters)` constructor WorkManager calls through
  reflection, by the class name it stored with the work request.

- every class of a `compileOnly` dependency (Media3, for EmbeddedDataSource and
  EmbeddedMediaItems) the library's classes reference (`javap -v`): an app without that
  dependency never uses those classes, but R8 stops on a missing class unless a `-dontwarn` rule
  names it. Each `-dontwarn` rule must name such a class, so none outlives its use.

R8 is not available here (and Debian's proguard 6.2 cannot read Java 17 classes), so this checks
the rules' text against those needs; a real shrink runs only where the Android SDK is. The check
checks itself too: with any one rule removed it must fail (--self-test).

Usage: keep_rules.py CLASSES_DIR [--self-test]
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "android/embedded-server/consumer-rules.pro"
JNI_SRC = ROOT / "embedded-server/src/jni"
PACKAGE = "io.embeddedserver"

# Packages of the library's compileOnly dependencies (android/embedded-server/build.gradle.kts),
# and androidx.annotation.OptIn, which comes with them (media3-common's annotation-experimental).
OPTIONAL = ("androidx.media3.", "androidx.annotation.OptIn")

JNI_TYPES = {"Z": "boolean", "B": "byte", "C": "char", "S": "short", "I": "int", "J": "long",
             "F": "float", "D": "double", "V": "void"}


def java_types(descriptor):
    """`(Ljava/lang/String;J)V` -> (['java.lang.String', 'long'], 'void')."""
    def one(s, i):
        dims = 0
        while s[i] == "[":
            dims, i = dims + 1, i + 1
        if s[i] == "L":
            end = s.index(";", i)
            name, i = s[i + 1:end].replace("/", "."), end + 1
        else:
            name, i = JNI_TYPES[s[i]], i + 1
        return name + "[]" * dims, i
    args, i = [], 1
    while descriptor[i] != ")":
        t, i = one(descriptor, i)
        args.append(t)
    ret, _ = one(descriptor, i + 1)
    return args, ret


def parse_rules(text):
    """Each `-keep...` rule as (kind, class pattern, implements or None, members or None)."""
    rules = []
    text = re.sub(r"#[^\n]*", "", text)
    for m in re.finditer(r"-keep\w*\s+(class|interface)\s+(\S+)(?:\s+implements\s+(\S+))?\s*(\{[^}]*\})?", text):
        kind, pattern, implements, body = m.groups()
        members = None
        if body:
            members = [x.strip() for x in body.strip("{}").split(";") if x.strip()]
        rules.append((kind, pattern, implements, members))
    return rules


def keeps_member(members, name, args, ret):
    if members is None:
        return False
    for m in members:
        if m in ("*", "<methods>"):
            return True
        if name == "<init>" and m == f"<init>({', '.join(args)})":
            return True
        if m == f"{ret} {name}({', '.join(args)})" or m == f"native <methods>":
            return True
    return False


def class_kept(rules, cls, name, args, ret):
    return any(p == cls and implements is None and keeps_member(members, name, args, ret)
               for _, p, implements, members in rules)


def implementors_kept(rules, iface, name, args, ret):
    return any(p == "*" and implements == iface and keeps_member(members, name, args, ret)
               for _, p, implements, members in rules)


def class_files(classes_dir):
    return sorted(str(p) for p in (classes_dir / PACKAGE.replace(".", "/")).glob("*.class"))


def optional_refs(classes_dir):
    """Every class of OPTIONAL named in the constant pools of PACKAGE's classes."""
    out = subprocess.run(["javap", "-v"] + class_files(classes_dir), capture_output=True, text=True, check=True).stdout
    # Internal names, bare (`// androidx/...` comments of Class entries) or in descriptors (`Landroidx/...;`).
    names = {n.replace("/", ".") for n in re.findall(r"L?((?:[\w$]+/)+[\w$]+)", out)}
    return sorted(n for n in names if n.startswith(OPTIONAL))


def dontwarn_failures(dontwarn, refs):
    return ([f"{c} (a compileOnly dependency) is referenced but no -dontwarn names it" for c in refs if c not in dontwarn]
            + [f"-dontwarn {c} names no class of a compileOnly dependency the library references"
               for c in dontwarn if c not in refs])


def javap(classes_dir):
    """{class name: [(name, descriptor, is_native, is_interface)]} for every class of PACKAGE."""
    out = subprocess.run(["javap", "-p", "-s"] + class_files(classes_dir), capture_output=True, text=True, check=True).stdout
    classes, current, interface, last = {}, None, False, None
    for line in out.splitlines():
        head = re.match(r"^(?:public |final |abstract |private |static )*(class|interface) (\S+)", line)
        if head:
            interface, current = head.group(1) == "interface", head.group(2)
            classes[current] = []
            continue
        if current and line.strip().startswith("descriptor:") and last:
            classes[current].append((last[0], line.split(":", 1)[1].strip(), last[1], interface))
            last = None
            continue
        member = re.match(r"^\s+(.*?)([\w$<>]+)\((.*)\)", line)
        if current and member:
            last = (member.group(2), " native " in f" {member.group(1)} ")
    return classes


WORKER_BASES = ("androidx.work.ListenableWorker", "androidx.work.Worker", "androidx.work.CoroutineWorker")
WORKER_ARGS = ["android.content.Context", "androidx.work.WorkerParameters"]


def workers(classes_dir):
    """The classes of PACKAGE that extend a WorkManager worker class (javap's class headers)."""
    out = subprocess.run(["javap"] + class_files(classes_dir), capture_output=True, text=True, check=True).stdout
    return sorted(m.group(1) for m in re.finditer(r"class (\S+) extends ([\w.$]+)", out) if m.group(2) in WORKER_BASES)


def worker_needs(names):
    """Each worker's constructor, which WorkManager calls by reflection."""
    return [(f"worker {cls}: WorkManager creates it by name with <init>({', '.join(WORKER_ARGS)})",
             lambda r, c=cls: class_kept(r, c, "<init>", WORKER_ARGS, "void")) for cls in names]


def needs(classes):
    """Every (why, check) pair the rules must satisfy."""
    out = []
    for cls, members in classes.items():
        for name, desc, native, _ in members:
            if native:
                args, ret = java_types(desc)
                out.append((f"native {cls}.{name}{desc}", lambda r, c=cls, n=name, a=args, t=ret: class_kept(r, c, n, a, t)))
    for path in sorted(JNI_SRC.glob("*.rs")):
        src = path.read_text()
        for m in re.finditer(r'call_method\(\s*[^,]+,\s*"(\w+)",\s*"([^"]+)"', src):
            name, desc = m.groups()
            args, ret = java_types(desc)
            declaring = [c for c, ms in classes.items() for (n, d, _, i) in ms if n == name and d == desc and i]
            if not declaring:
                out.append((f"{path.name}: calls {name}{desc}, which no interface of {PACKAGE} declares",
                            lambda r: False))
            for iface in declaring:
                out.append((f"{path.name}: {iface}.{name}{desc} on the interface",
                            lambda r, i=iface, n=name, a=args, t=ret: class_kept(r, i, n, a, t)))
                out.append((f"{path.name}: {name}{desc} on every class implementing {iface}",
                            lambda r, i=iface, n=name, a=args, t=ret: implementors_kept(r, i, n, a, t)))
        consts = dict(re.findall(r'const (\w+): &str = "(\([^"]*\)V)";', src))
        for m in re.finditer(r'"(io/embeddedserver/[\w/$]+)"(?:,\s*(?:"(\([^"]*\)V)"|(\w+)))?', src):
            cls = m.group(1).replace("/", ".")
            desc = m.group(2) or consts.get(m.group(3) or "", "(Ljava/lang/String;)V")
            args, _ = java_types(desc)
            out.append((f"{path.name}: names class {cls} (constructed with {desc})",
                        lambda r, c=cls, a=args: class_kept(r, c, "<init>", a, "void")))
    return out


def failures(rules, required):
    return [why for why, ok in required if not ok(rules)]


def main():
    classes_dir = pathlib.Path(sys.argv[1])
    classes = javap(classes_dir)
    required = needs(classes) + worker_needs(workers(classes_dir))
    if not any(why.startswith("native ") for why, _ in required):
        sys.exit("keep_rules.py: javap found no native method: wrong classes directory?")
    text = RULES.read_text()
    rules = parse_rules(text)
    missing = failures(rules, required)
    if missing:
        sys.exit("consumer-rules.pro misses what the native side or WorkManager needs:\n- " + "\n- ".join(missing))
    print(f"ok   consumer-rules.pro keeps all {len(required)} names the native side and WorkManager need")
    refs = optional_refs(classes_dir)
    dontwarn = re.findall(r"^-dontwarn\s+(\S+)\s*$", re.sub(r"#[^\n]*", "", text), re.M)
    missing = dontwarn_failures(dontwarn, refs)
    if missing:
        sys.exit("consumer-rules.pro and the compileOnly dependencies disagree:\n- " + "\n- ".join(missing))
    print(f"ok   consumer-rules.pro has -dontwarn for all {len(refs)} classes of compileOnly dependencies")
    if "--self-test" in sys.argv:
        for i, rule in enumerate(rules):
            if not failures(rules[:i] + rules[i + 1:], required):
                sys.exit(f"keep_rules.py: removing the rule {rule} goes unnoticed: the check is too weak "
                         "or the rule is not needed")
        print(f"ok   each of the {len(rules)} rules is needed: removing any one fails the check")
        for i, rule in enumerate(dontwarn):
            if not dontwarn_failures(dontwarn[:i] + dontwarn[i + 1:], refs):
                sys.exit(f"keep_rules.py: removing -dontwarn {rule} goes unnoticed")
        if not refs:
            sys.exit("keep_rules.py: javap found no class of a compileOnly dependency: wrong classes directory?")
        print(f"ok   each of the {len(dontwarn)} -dontwarn rules is needed")


if __name__ == "__main__":
    main()
