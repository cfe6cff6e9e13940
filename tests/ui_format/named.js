// Builds, in the real editor, the UI files that the end-to-end tests run on real ComfyUI:
// `tiny-sd15` (the editor's default graph on the tiny checkpoint) and `constructs` (a muted
// node, a bypassed node, a reroute chain, a primitive feeding two seeds, and a subgraph).
async ({ kind, checkpoint }) => {
  const graph = window.app.graph;
  const add = (type, values = {}) => {
    const node = window.LiteGraph.createNode(type);
    graph.add(node);
    for (const [name, value] of Object.entries(values)) node.widgets.find((w) => w.name === name).value = value;
    return node;
  };
  const link = (from, slot, to, input) => from.connect(slot, to, to.findInputSlot(input));
  if (kind === 'tiny-sd15') {
    await window.app.loadGraphData();
    for (const node of graph.nodes) {
      const set = (name, value) => { const w = node.widgets?.find((x) => x.name === name); if (w) w.value = value; };
      set('ckpt_name', checkpoint); set('width', 64); set('height', 64); set('steps', 2);
      set('control_after_generate', 'fixed');
    }
    return graph.serialize();
  }
  graph.clear();
  const ckpt = add('CheckpointLoaderSimple', { ckpt_name: checkpoint });
  const positive = add('CLIPTextEncode', { text: 'a lighthouse' });
  const negative = add('CLIPTextEncode', { text: '' });
  const first = add('Reroute'); const second = add('Reroute'); const third = add('Reroute');
  link(ckpt, 1, first, ''); first.connect(0, second, 0); second.connect(0, third, 0);
  third.connect(0, positive, positive.findInputSlot('clip'));
  third.connect(0, negative, negative.findInputSlot('clip'));
  const latent = add('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
  const sampler = add('KSampler', { seed: 1, steps: 2, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 1 });
  const refine = add('KSampler', { seed: 2, steps: 2, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 0.5 });
  for (const s of [sampler, refine]) {
    link(ckpt, 0, s, 'model'); link(positive, 0, s, 'positive'); link(negative, 0, s, 'negative');
  }
  link(latent, 0, sampler, 'latent_image'); link(sampler, 0, refine, 'latent_image');
  const seed = add('PrimitiveNode');
  link(seed, 0, sampler, 'seed'); link(seed, 0, refine, 'seed');
  seed.widgets[0].value = 4242;
  const decode = add('VAEDecode'); link(refine, 0, decode, 'samples'); link(ckpt, 2, decode, 'vae');
  const invert = add('ImageInvert'); link(decode, 0, invert, 'image'); invert.mode = 4;
  const blur = add('ImageBlur', { blur_radius: 2, sigma: 1 }); link(invert, 0, blur, 'image');
  const save = add('SaveImage', { filename_prefix: 'constructs' }); link(blur, 0, save, 'images');
  const muted = add('PreviewImage'); link(decode, 0, muted, 'images'); muted.mode = 2;
  add('Note').widgets[0].value = 'muted preview, bypassed invert, reroutes, one seed for two samplers';
  graph.convertToSubgraph(new Set([blur]));
  return graph.serialize();
}
