// A part's 3D model (GLB) in the browser, drawn with three.js r187 served by Holdfast itself
// (static/vendor/three; the page's import map names "three" and "three/addons/"). Loaded only
// when a part's page has a model to show, so the other pages never fetch three.js.
//
// Drawn on demand (once loaded, and when the view is turned, zoomed or resized), not in a loop.
// The drawing buffer is kept (preserveDrawingBuffer) so what is on the canvas can be read back:
// a screenshot, or a test checking that something was drawn.

import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const BACKGROUND = 0xf4f6f9;

function webglAvailable() {
  try {
    const probe = document.createElement("canvas");
    return Boolean(probe.getContext("webgl2") || probe.getContext("webgl"));
  } catch {
    return false;
  }
}

/** Aim the camera at the whole model, from a three-quarter view, with room around it. */
function frame(camera, controls, object) {
  const box = new THREE.Box3().setFromObject(object);
  const size = box.getSize(new THREE.Vector3());
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(size.length() / 2, 1e-6);
  const distance = radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2));
  const direction = new THREE.Vector3(1, 0.8, 1.2).normalize();
  camera.position.copy(center).addScaledVector(direction, distance * 1.05);
  camera.near = distance / 100;
  camera.far = distance * 100;
  camera.updateProjectionMatrix();
  controls.target.copy(center);
  controls.minDistance = radius * 0.2;
  controls.maxDistance = distance * 10;
  controls.update();
}

/**
 * Show the GLB at `url` in `container` (an element with a size). Resolves once the model has
 * been drawn, to a handle with `dispose()`; rejects with a readable error (no WebGL, a file
 * three.js cannot read).
 */
export async function showModel(container, url) {
  if (!webglAvailable()) throw new Error("This browser cannot draw 3D models (WebGL is off).");
  const width = () => Math.max(container.clientWidth, 1);
  const height = () => Math.max(container.clientHeight, 1);

  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.setSize(width(), height());
  renderer.setClearColor(BACKGROUND, 1);
  const canvas = renderer.domElement;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "The part's 3D model: drag to turn it, scroll to zoom");
  container.replaceChildren(canvas);

  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x5b6576, 1.4));
  const sun = new THREE.DirectionalLight(0xffffff, 2.8);
  sun.position.set(2, 5, 3);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, width() / height(), 0.01, 1000);
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = false;

  const draw = () => renderer.render(scene, camera);
  controls.addEventListener("change", draw);
  const resized = new ResizeObserver(() => {
    renderer.setSize(width(), height());
    camera.aspect = width() / height();
    camera.updateProjectionMatrix();
    draw();
  });

  const dispose = () => {
    resized.disconnect();
    controls.dispose();
    scene.traverse((node) => {
      if (node.geometry) node.geometry.dispose();
      for (const material of [].concat(node.material || [])) material.dispose();
    });
    renderer.dispose();
    canvas.remove();
  };

  let gltf;
  try {
    gltf = await new GLTFLoader().loadAsync(url);
  } catch (error) {
    dispose();
    throw new Error(`The model could not be read: ${error.message || error}`);
  }
  const model = gltf.scene;
  let meshes = 0;
  model.traverse((node) => {
    if (node.isMesh) meshes++;
  });
  if (!meshes) {
    dispose();
    throw new Error("The model has nothing to draw (no mesh in it).");
  }
  scene.add(model);
  frame(camera, controls, model);
  resized.observe(container);
  draw();
  canvas.dataset.drawn = "true";
  return { canvas, dispose };
}
