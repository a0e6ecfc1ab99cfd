"""PCA and t-SNE of the network's codes (van der Maaten & Hinton 2008; Karpathy's
"t-SNE visualization of CNN codes").

    t-SNE:  ∂KL/∂y_i = 4 Σ_j (p_ij − q_ij)(1 + ‖y_i − y_j‖²)⁻¹ (y_i − y_j)
"""
# %% Codes of 2000 test images
import os
import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES, load_fashion_mnist
from minicnn.plot.core import save_figure
from minicnn.plot.representations import plot_embedding, plot_thumbnails
from minicnn.techniques.embedding import pca, trustworthiness
from minicnn.techniques.neighbors import extract_features
from minicnn.techniques.tsne import tsne

model = mc.models.fashion_net(pretrained=True)
images, labels = load_fashion_mnist("test")
images, labels = images[:2000], labels[:2000]
feats = mc.to_numpy(extract_features(model, model.preprocess.preprocess(images)))

# %% PCA: a linear projection keeps the large distances
p = pca(feats, n_components=2)
print("explained variance:", p.explained_variance_ratio)
save_figure(plot_embedding(p.scores, labels, FASHION_MNIST_CLASSES, title="PCA"),
            "demo-output/pca.png")

# %% t-SNE: keeps the neighbourhoods
Y = tsne(feats, perplexity=30, seed=0)
print("trustworthiness (k=5):", trustworthiness(feats, Y, k=5))
save_figure(plot_embedding(Y, labels, FASHION_MNIST_CLASSES, title="t-SNE"),
            "demo-output/tsne.png")
save_figure(plot_thumbnails(Y, images, canvas=1600), "demo-output/tsne_images.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
