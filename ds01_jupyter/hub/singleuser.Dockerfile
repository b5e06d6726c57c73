# The single-user image of DS01's JupyterHub: the base image plus jupyterhub-singleuser, JupyterLab
# and ds01-jupyter (the sidebar inside the server), installed from a folder of wheels with the
# network off, so no registry is needed. Project images for the hub are built FROM it.
#
# The hub builds it by itself (and rebuilds it after an upgrade); by hand, from the wheels folder
# that `ds01-hub wheels` filled (ds01-jupyter's wheel in its ds01/ folder; ds01-wheels.json names
# the versions):
#
#   docker build --network none -t ds01/singleuser:latest -f singleuser.Dockerfile \
#     --build-arg BASE_IMAGE=ds01/base:latest --build-arg JUPYTERHUB_VERSION=6.1.1 \
#     --build-arg JUPYTERLAB_VERSION=4.6.6 --build-arg DS01_JUPYTER_VERSION=0.1.0 /srv/ds01/wheels
#
# The versions are pinned in pip's command line, so the labels say what is inside.
ARG BASE_IMAGE=ds01/base:latest
FROM ${BASE_IMAGE}
ARG JUPYTERHUB_VERSION
ARG JUPYTERLAB_VERSION
# JupyterHub, JupyterLab and ds01-jupyter's own dependencies (its pyproject.toml's, kept in step by a test).
COPY *.whl /tmp/ds01-wheels/
RUN test -n "${JUPYTERHUB_VERSION}" -a -n "${JUPYTERLAB_VERSION}" \
      || { echo "set the build args JUPYTERHUB_VERSION, JUPYTERLAB_VERSION and DS01_JUPYTER_VERSION" >&2; exit 1; }; \
    pip install --no-cache-dir --no-index --find-links /tmp/ds01-wheels "jupyterhub==${JUPYTERHUB_VERSION}" \
      "jupyterlab==${JUPYTERLAB_VERSION}" docker PyYAML nvidia-ml-py \
    && rm -rf /tmp/ds01-wheels
# ds01-jupyter last, in a layer of its own: a new build of it reuses everything above.
ARG DS01_JUPYTER_VERSION
ARG WHEELS_DIGEST=""
COPY ds01/*.whl /tmp/ds01-wheel/
RUN test -n "${DS01_JUPYTER_VERSION}" || { echo "set the build arg DS01_JUPYTER_VERSION" >&2; exit 1; }; \
    pip install --no-cache-dir --no-index --no-deps /tmp/ds01-wheel/ds01_jupyter-${DS01_JUPYTER_VERSION}-*.whl \
    && rm -rf /tmp/ds01-wheel && python3 -c "import ds01_jupyter.server, jupyterhub"
# The server extension inside answers in container mode (no Docker access in here).
ENV DS01_MODE=container
LABEL ds01.singleuser=true \
      ds01.singleuser.jupyterhub=${JUPYTERHUB_VERSION} \
      ds01.singleuser.jupyterlab=${JUPYTERLAB_VERSION} \
      ds01.singleuser.ds01-jupyter=${DS01_JUPYTER_VERSION} \
      ds01.singleuser.wheels=${WHEELS_DIGEST}
CMD ["jupyterhub-singleuser"]
